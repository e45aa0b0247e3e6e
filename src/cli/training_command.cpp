// Shared plumbing of the training commands (see training_command.hpp).

#include "training_command.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>

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
  if (!selection.warning.empty()) say_error(environment.log_prefix() + selection.warning);
  return selection.device;
}

void say_error(const std::string& message) {
  const std::string line = message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

std::vector<Section> run_option_sections() {
  std::vector<Section> sections;
  sections.emplace_back("General");
  // clang-format off
  sections.back().options.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::string>(), "INI file with any of these options (key = value); the command line wins");
  // clang-format on
  add_options(sections, experiments::run_options());
  return sections;
}

experiments::Messages console_messages() { return experiments::Messages::standard(); }

namespace {

// --inject-fault KIND:RANK:STEP (tests only, not in --help): world rank RANK throws, hangs or
// exits at its training step STEP, to test that a job ends instead of hanging and resumes.
std::optional<training::FaultInjection> fault_for_this_rank(const std::string& text, int world_rank) {
  const auto first = text.find(':'), second = text.rfind(':');
  if (first == std::string::npos || first == second) {
    throw UsageError("--inject-fault must be <throw|hang|exit>:<rank>:<step>, got " + text);
  }
  const auto kind_text = text.substr(0, first);
  training::FaultInjection fault;
  if (kind_text == "throw")
    fault.kind = training::FaultInjection::Kind::Throw;
  else if (kind_text == "hang")
    fault.kind = training::FaultInjection::Kind::Hang;
  else if (kind_text == "exit")
    fault.kind = training::FaultInjection::Kind::Exit;
  else
    throw UsageError("--inject-fault kind must be throw, hang or exit, got " + kind_text);
  try {
    const int rank = option_text::parse<int>(text.substr(first + 1, second - first - 1));
    fault.step = option_text::parse<std::int64_t>(text.substr(second + 1));
    if (rank != world_rank) return std::nullopt;
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--inject-fault: ") + e.what());
  }
  return fault;
}

}  // namespace

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
    const auto vm = parse_with_config(argc, argv, parsed);
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
      throw UsageError(std::string("--preemption-signal: ") + e.what());
    }
    if (vm.count("inject-fault")) {
      setup.config.training.fault = fault_for_this_rank(vm["inject-fault"].as<std::string>(), environment.rank());
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
