#pragma once
// Named options bound to the fields of a typed configuration. A table is the one description of
// a configuration's options: their names, groups, help and defaults (the values of a
// default-constructed configuration), how text sets a field (checked: ConfigError names the
// option), and how a field is written back with full precision (a config file that reproduces
// the run). Command-line parsers, config files and search trials all go through it.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "brainmri/common/config_error.hpp"
#include "brainmri/common/enum_names.hpp"

namespace brainmri {

enum class OptionArity {
  Value,  // one value
  Flag,   // a boolean that may be given without a value (meaning true)
  List,   // repeated: each value appends
};

template <typename Config>
struct Option {
  std::string name;
  std::string group;
  std::string help;
  OptionArity arity = OptionArity::Value;
  bool searchable = true;  // a search may vary it (not where data and results live, nor the seed)
  // A file or directory the run reads (dataset, weights): a relative value in a config file is
  // relative to that file, and a config file written for others names it relative to itself.
  bool input_path = false;
  std::function<void(Config&, const std::string&)> set;        // throws ConfigError
  std::function<std::vector<std::string>(const Config&)> get;  // one text per value
};

namespace option_text {

// Full precision: the shortest text that reads back as the same double.
inline std::string format(double value) {
  char text[64];
  const auto [end, error] = std::to_chars(text, text + sizeof(text), value);
  return std::string(text, end);
}
inline std::string format(bool value) { return value ? "true" : "false"; }
inline std::string format(const std::string& value) { return value; }
inline std::string format(const std::filesystem::path& value) { return value.string(); }
template <typename Integer>
requires std::is_integral_v<Integer> std::string format(Integer value) { return std::to_string(value); }
template <NamedEnum Enum>
std::string format(Enum value) {
  return name_of(value);
}
inline std::string format(const std::vector<int>& values) {
  std::string text;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(values[i]);
  }
  return text;
}

// Reads `text` as a T, all of it; throws std::invalid_argument saying what was expected.
template <typename T>
T parse(const std::string& text) {
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return std::filesystem::path(text);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "0" || text == "no" || text == "off") return false;
    throw std::invalid_argument("'" + text + "' is not true or false");
  } else if constexpr (NamedEnum<T>) {
    return parse_enum<T>(text);
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    std::vector<int> values;
    std::stringstream stream(text);
    for (std::string item; std::getline(stream, item, ',');) values.push_back(parse<int>(item));
    return values;
  } else {
    static_assert(std::is_arithmetic_v<T>);
    T value{};
    const auto* first = text.data();
    const auto* last = text.data() + text.size();
    if (!text.empty() && text.front() == '+') ++first;
    const auto [end, error] = std::from_chars(first, last, value);
    if (error != std::errc() || end != last || first == last) {
      throw std::invalid_argument("'" + text + "' is not " +
                                  (std::is_floating_point_v<T> ? "a number"
                                   : std::is_signed_v<T>       ? "an integer"
                                                               : "a non-negative integer"));
    }
    return value;
  }
}

}  // namespace option_text

// An option bound to a field: `field` maps a configuration (const or not) to a reference to it.
template <typename Config, typename Field>
Option<Config> bind_option(const std::string& name, const std::string& group, const std::string& help, Field field,
                           bool searchable = true) {
  using T = std::remove_cvref_t<decltype(field(std::declval<Config&>()))>;
  Option<Config> option;
  option.searchable = searchable;
  option.set = [field, name](Config& config, const std::string& text) {
    try {
      field(config) = option_text::parse<T>(text);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(name, e.what());
    }
  };
  option.get = [field](const Config& config) { return std::vector<std::string>{option_text::format(field(config))}; };
  option.name = name;
  option.group = group;
  option.help = help;
  return option;
}

// An option given in units (MiB, millions) and kept as a count of bytes or pixels: the text
// `value` sets count = value × `scale`; values outside (0, `largest`] are refused.
template <typename Config, typename Field>
Option<Config> bind_scaled_option(const std::string& name, const std::string& group, const std::string& help,
                                  Field field, double scale, double largest) {
  using Count = std::remove_cvref_t<decltype(field(std::declval<Config&>()))>;
  Option<Config> option;
  option.searchable = false;
  option.set = [field, name, scale, largest](Config& config, const std::string& text) {
    double units = 0;
    try {
      units = option_text::parse<double>(text);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(name, e.what());
    }
    if (!(units > 0) || units > largest) {
      throw ConfigError(name, "must be in (0, " + option_text::format(largest) + "], got " + text);
    }
    field(config) = static_cast<Count>(units * scale);
  };
  option.get = [field, scale](const Config& config) {
    return std::vector<std::string>{option_text::format(static_cast<double>(field(config)) / scale)};
  };
  option.name = name;
  option.group = group;
  option.help = help;
  return option;
}

// The same option, also given alone on a command line (meaning true).
template <typename Config>
Option<Config> as_flag(Option<Config> option) {
  option.arity = OptionArity::Flag;
  return option;
}

// The same option, naming a file or directory that is read (see Option::input_path).
template <typename Config>
Option<Config> as_input_path(Option<Config> option) {
  option.input_path = true;
  return option;
}

// The names of a table's input paths.
template <typename Config>
std::vector<std::string> input_path_names(const std::vector<Option<Config>>& table) {
  std::vector<std::string> names;
  for (const auto& option : table) {
    if (option.input_path) names.push_back(option.name);
  }
  return names;
}

// A repeated option bound to a list of texts.
template <typename Config, typename Field>
Option<Config> bind_list_option(const std::string& name, const std::string& group, const std::string& help, Field field,
                                bool searchable = false) {
  Option<Config> option;
  option.arity = OptionArity::List;
  option.searchable = searchable;
  option.set = [field](Config& config, const std::string& text) { field(config).push_back(text); };
  option.get = [field](const Config& config) { return field(config); };
  option.name = name;
  option.group = group;
  option.help = help;
  return option;
}

template <typename Config>
const Option<Config>* find_option(const std::vector<Option<Config>>& table, const std::string& name) {
  for (const auto& option : table) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

// Sets one option by name; throws ConfigError for an unknown name or a bad value.
template <typename Config>
void set_option(const std::vector<Option<Config>>& table, Config& config, const std::string& name,
                const std::string& text) {
  const auto* option = find_option(table, name);
  if (option == nullptr) throw ConfigError(name, "no such option");
  option->set(config, text);
}

// "key = value" lines, one per value, in the table's order, leaving out the `skipped` options.
// With `file_directory`, input paths are written relative to it (where the file goes), so that the
// file reads back alike from any working directory and names no machine's absolute path.
template <typename Config>
std::string to_ini(const std::vector<Option<Config>>& table, const Config& config,
                   const std::vector<std::string>& skipped = {}, const std::filesystem::path& file_directory = {}) {
  std::string text;
  for (const auto& option : table) {
    if (std::find(skipped.begin(), skipped.end(), option.name) != skipped.end()) continue;
    for (auto value : option.get(config)) {
      if (option.input_path && !value.empty() && !file_directory.empty()) {
        const auto relative = std::filesystem::absolute(value).lexically_normal().lexically_relative(
            std::filesystem::absolute(file_directory).lexically_normal());
        if (!relative.empty()) value = relative.string();
      }
      text += option.name + " = " + value + "\n";
    }
  }
  return text;
}

}  // namespace brainmri
