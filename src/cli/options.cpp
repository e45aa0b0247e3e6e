#include "options.hpp"

#include <fstream>
#include <sstream>
#include <vector>

namespace brainmri::cli {

po::variables_map parse_with_config(int argc, const char* const argv[], const po::options_description& options,
                                    const po::positional_options_description* positional) {
  po::variables_map vm;
  auto parser = po::command_line_parser(argc, argv).options(options);
  if (positional) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw UsageError("cannot read --config " + path);
    po::store(po::parse_config_file(file, options), vm);
  }
  po::notify(vm);
  return vm;
}

std::string resolved_config(const po::options_description& options, const po::variables_map& values) {
  std::ostringstream out;
  for (const auto& option : options.options()) {
    const auto& name = option->long_name();
    if (name == "config" || name == "help" || !values.count(name)) continue;
    const auto& value = values[name].value();
    if (const auto* list = boost::any_cast<std::vector<std::string>>(&value)) {  // a repeatable option
      for (const auto& item : *list) out << name << " = " << item << "\n";
      continue;
    }
    out << name << " = ";
    if (const auto* s = boost::any_cast<std::string>(&value)) {
      out << *s;
    } else if (const auto* i = boost::any_cast<int>(&value)) {
      out << *i;
    } else if (const auto* l = boost::any_cast<std::int64_t>(&value)) {
      out << *l;
    } else if (const auto* u = boost::any_cast<std::uint64_t>(&value)) {
      out << *u;
    } else if (const auto* d = boost::any_cast<double>(&value)) {
      out << *d;
    } else if (const auto* b = boost::any_cast<bool>(&value)) {
      out << (*b ? "true" : "false");
    } else {
      out << "?";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace brainmri::cli
