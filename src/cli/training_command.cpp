// Shared plumbing of the training commands (see training_command.hpp).

#include "training_command.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "brainmri/common/log.hpp"
#include "brainmri/common/preemption.hpp"

namespace brainmri::cli {

// Each rank gets its share of the node's cores, so that ranks do not oversubscribe them.
void set_threads(int requested, const distributed::MpiEnvironment& environment) {
  int threads = requested;
  if (threads <= 0 && environment.size() > 1) {
    threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, environment.local_size()));
  }
  if (threads > 0) {
    torch::set_num_threads(threads);
    torch::set_num_interop_threads(1);
  }
}

torch::Device choose_device(distributed::DeviceChoice choice, const distributed::MpiEnvironment& environment) {
  const auto selection = distributed::pick_device(choice, environment);
  if (!selection.warning.empty()) logging::warning(selection.warning);
  return selection.device;
}

torch::Device choose_device(distributed::DeviceChoice choice) {
  const auto selection = distributed::pick_device(choice);
  if (!selection.warning.empty()) logging::warning(selection.warning);
  return selection.device;
}

void say_error(const std::string& message) { logging::error(message); }

std::vector<Section> run_option_sections() {
  std::vector<Section> sections;
  sections.emplace_back("General");
  // clang-format off
  sections.back().options.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options (key = value); the command line wins");
  // clang-format on
  add_log_level_option(sections.back().options);
  add_options(sections, experiments::run_options());
  return sections;
}

distributed::DescribeFailure describe_failure(const std::string& command) {
  return [command](const std::exception_ptr& failure) -> distributed::FailureReport {
    const std::string name = "brainmri " + command + ": ";
    const std::string see_help = "\nTry 'brainmri " + command + " --help'.";
    try {
      std::rethrow_exception(failure);
    } catch (const PreemptionRequested& e) {
      return {name + e.what() + " (exit code " + std::to_string(kExitPreempted) + ")", kExitPreempted, true};
    } catch (const po::error& e) {
      return {name + e.what() + see_help, kExitUsage, true};
    } catch (const ConfigError& e) {
      return {name + usage_error(e).what() + see_help, kExitUsage, true};
    } catch (const UsageError& e) {
      return {name + e.what() + see_help, kExitUsage, true};
    } catch (const c10::Error& e) {
      return {name + "error: " + e.what_without_backtrace(), kExitFailure, false};
    } catch (const std::exception& e) {
      return {name + "error: " + e.what(), kExitFailure, false};
    } catch (...) {
      return {name + "error: an unknown exception", kExitFailure, false};
    }
  };
}

void agree_on_setup(const distributed::MpiEnvironment& environment, const std::string& command,
                    const std::function<void()>& setup) {
  distributed::agree_on_setup(environment, setup, describe_failure(command), say_error);
}

int run_or_abort_job(const distributed::MpiEnvironment& environment, const std::string& command,
                     const std::function<int()>& body) {
  return distributed::run_or_abort_job(environment, body, describe_failure(command), say_error);
}

TrainingSetup prepare_training(
    int argc, const char* const argv[], const po::options_description& options,
    const distributed::MpiEnvironment& environment, const std::string& command,
    const std::function<std::string(const po::variables_map&, const experiments::RunConfig&)>& build_more) {
  TrainingSetup setup;
  std::string config_text;
  agree_on_setup(environment, command, [&] {
    po::options_description parsed;
    parsed.add(options);
    // clang-format off
    parsed.add_options()("inject-fault", po::value<std::string>(), "tests only: KIND:RANK:STEP");
    // clang-format on
    const auto vm = parse_with_config(argc, argv, parsed, nullptr, input_path_names(experiments::run_options()));
    setup.help = vm.count("help") > 0;
    if (setup.help) return;
    apply_options(vm, experiments::run_options(), setup.config);
    if (setup.config.data.dataset.empty() || setup.config.output.directory.empty()) {
      throw UsageError(command + " needs --data and --output");
    }
    experiments::validate(setup.config);
    try {
      install_preemption_handler(setup.config.runtime.preemption_signal);
    } catch (const std::invalid_argument& e) {
      throw ConfigError("preemption-signal", e.what());
    }
    if (vm.count("inject-fault")) {
      setup.config.training.fault =
          training::FaultInjection::for_rank(vm["inject-fault"].as<std::string>(), environment.rank());
    }
    config_text = to_ini(experiments::run_options(), setup.config);
    if (build_more) config_text += build_more(vm, setup.config);
    setup.device = choose_device(setup.config.runtime.device, environment);
  });
  if (setup.help) return setup;
  if (const auto mismatch = environment.compare_across_ranks(config_text); !mismatch.empty()) {
    throw UsageError(mismatch + "\nEvery rank must be started with the same options and config file.");
  }
  set_threads(setup.config.distribution.cpu_threads(), environment);
  return setup;
}

}  // namespace brainmri::cli
