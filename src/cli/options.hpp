#pragma once
// The command-line edge: Boost.Program_options over the library's option tables (a command line
// plus an INI config file), usage errors with exit code 2, and the typed configurations built
// from them. Nothing below src/cli/ sees a variables_map.

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "brainmri/common/config_error.hpp"
#include "brainmri/common/log.hpp"
#include "brainmri/common/option_table.hpp"

namespace brainmri::cli {

namespace po = boost::program_options;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A library's complaint about an option, as the user wrote it: "--lr: must be > 0".
inline UsageError usage_error(const ConfigError& error) { return UsageError(std::string("--") + error.what()); }

// The choice `text` of the enum option `option`; throws ConfigError naming the option.
template <NamedEnum Enum>
Enum parse_choice(const std::string& option, const std::string& text) {
  try {
    return parse_enum<Enum>(text);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(option, e.what());
  }
}

// Parses argv, then the file named by --config (if the description has it); command-line values
// win. A relative value of an `input_paths` option in the file is relative to the file. Sets the
// log's level if the description has --log-level. Throws po::error, UsageError or ConfigError.
po::variables_map parse_with_config(int argc, const char* const argv[], const po::options_description& options,
                                    const po::positional_options_description* positional = nullptr,
                                    const std::vector<std::string>& input_paths = {});

// --log-level, which every command takes; parse_with_config applies it.
void add_log_level_option(po::options_description& options);

// A titled group of options in a command's help.
struct Section {
  std::string title;
  po::options_description options;
  explicit Section(const std::string& caption) : title(caption), options(caption) {}
};

// Adds a table's options to `sections`, one section per group in the table's order (an existing
// section of the same title is reused). Defaults are the default configuration's values.
template <typename Config>
void add_options(std::vector<Section>& sections, const std::vector<Option<Config>>& table) {
  const Config defaults;
  for (const auto& option : table) {
    auto section =
        std::find_if(sections.begin(), sections.end(), [&](const Section& s) { return s.title == option.group; });
    if (section == sections.end()) {
      sections.emplace_back(option.group);
      section = sections.end() - 1;
    }
    po::value_semantic* semantic = nullptr;
    if (option.arity == OptionArity::List) {
      semantic = po::value<std::vector<std::string>>()->composing();
    } else {
      const auto value = option.get(defaults).front();
      auto* typed = po::value<std::string>()->default_value(value, value.empty() ? "\"\"" : value);
      if (option.arity == OptionArity::Flag) typed->implicit_value("true");
      semantic = typed;
    }
    section->options.add_options()(option.name.c_str(), semantic, option.help.c_str());
  }
}

// The sections as one description titled `title`.
po::options_description combined(const std::string& title, const std::vector<Section>& sections);

// Sets every option of the table that `vm` holds on `config`; throws UsageError naming the option.
// Input paths become absolute: the run's config.ini then reproduces it from any directory.
template <typename Config>
void apply_options(const po::variables_map& vm, const std::vector<Option<Config>>& table, Config& config) {
  try {
    for (const auto& option : table) {
      if (!vm.count(option.name)) continue;
      if (option.arity == OptionArity::List) {
        for (const auto& value : vm[option.name].template as<std::vector<std::string>>()) option.set(config, value);
      } else {
        const auto& value = vm[option.name].template as<std::string>();
        const bool resolve = option.input_path && !value.empty();
        option.set(config, resolve ? std::filesystem::absolute(value).lexically_normal().string() : value);
      }
    }
  } catch (const ConfigError& e) {
    throw usage_error(e);
  }
}

}  // namespace brainmri::cli
