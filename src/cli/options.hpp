#pragma once
// Boost.Program_options helpers shared by the brainmri subcommands: command line plus an INI
// config file, usage errors with exit code 2, and the resolved configuration written back out.

#include <boost/program_options.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace brainmri::cli {

namespace po = boost::program_options;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses argv, then the file named by --config (if the description has it); command-line values
// win. Throws po::error or UsageError.
po::variables_map parse_with_config(int argc, const char* const argv[], const po::options_description& options,
                                    const po::positional_options_description* positional = nullptr);

// "key = value" lines for every option that has a value, in the description's order: a config
// file that reproduces the run.
std::string resolved_config(const po::options_description& options, const po::variables_map& values);

}  // namespace brainmri::cli
