#include "options.hpp"

#include <fstream>

#include "brainmri/common/ini.hpp"

namespace brainmri::cli {

po::variables_map parse_with_config(int argc, const char* const argv[], const po::options_description& options,
                                    const po::positional_options_description* positional,
                                    const std::vector<std::string>& input_paths) {
  po::variables_map vm;
  auto parser = po::command_line_parser(argc, argv).options(options);
  if (positional) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw UsageError("cannot read --config " + path);
    po::parsed_options from_file(&options);
    try {
      for (const auto& entry : parse_ini(file, path)) {
        if (options.find_nothrow(entry.key, false) == nullptr) {
          throw UsageError(path + ":" + std::to_string(entry.line) + ": unknown option '" + entry.key + "'");
        }
        auto value = entry.value;
        const bool is_input = std::find(input_paths.begin(), input_paths.end(), entry.key) != input_paths.end();
        if (is_input && !value.empty() && std::filesystem::path(value).is_relative()) {
          value = (std::filesystem::path(path).parent_path() / value).lexically_normal().string();
        }
        from_file.options.emplace_back(entry.key, std::vector<std::string>{value});
      }
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    po::store(from_file, vm);
  }
  po::notify(vm);
  if (vm.count("log-level")) logging::set_level(parse_choice<LogLevel>("log-level", vm["log-level"].as<std::string>()));
  return vm;
}

void add_log_level_option(po::options_description& options) {
  options.add_options()("log-level", po::value<std::string>()->default_value(name_of(logging::level())),
                        "what the log (stderr, timestamped, rank-prefixed) shows: trace, debug, info, warning, error "
                        "or off; the default comes from BRAINMRI_LOG_LEVEL, else info");
}

po::options_description combined(const std::string& title, const std::vector<Section>& sections) {
  po::options_description all(title);
  for (const auto& section : sections) all.add(section.options);
  return all;
}

}  // namespace brainmri::cli
