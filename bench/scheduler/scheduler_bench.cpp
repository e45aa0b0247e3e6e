// The experiment scheduler at scale, with stand-in jobs (sleeps of random length, no training):
// run under `mpirun --oversubscribe -np N`, one group per rank. Measures what limits a search of
// a thousand trials or a cross-validation of a hundred fold jobs on a cluster: the dispatch
// latency of a job (from a group's report to its next job), the time groups sit idle, the
// journal's size, and the time a killed experiment takes to resume (journal and plan replay).
//
//   scheduler_bench --plan asha|fixed --dir DIR [--jobs 100] [--trials 1000 --rungs 3 --eta 3]
//                   [--min-ms 50 --max-ms 500] [--seed 1]
//
// One JSON line from rank 0. Rerunning on the same DIR resumes, as `brainmri tune` would.

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/experiments/search.hpp"

using namespace brainmri;
using namespace brainmri::experiments;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A stand-in job's length and score, fixed by its name and the seed (a rerun draws the same).
double fraction_of(const std::string& job, std::uint64_t seed, std::uint64_t salt) {
  const auto h = std::hash<std::string>{}(job) ^ (seed * 0x9E3779B97F4A7C15ull) ^ salt;
  return static_cast<double>((h * 0xBF58476D1CE4E5B9ull) >> 11) / static_cast<double>(1ull << 53);
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(std::min<double>(values.size() - 1, std::floor(q * values.size())));
  return values[index];
}

}  // namespace

int main(int argc, char* argv[]) {
  distributed::MpiEnvironment environment(&argc, &argv);
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  const auto get = [&](const std::string& name, const std::string& fallback) {
    const auto found = args.find(name);
    return found == args.end() ? fallback : found->second;
  };
  const std::string plan_kind = get("--plan", "asha");
  const fs::path dir = get("--dir", "");
  if (dir.empty() || (plan_kind != "asha" && plan_kind != "fixed")) {
    if (environment.rank() == 0) std::cerr << "usage: scheduler_bench --plan asha|fixed --dir DIR [options]\n";
    return 2;
  }
  const int jobs = std::stoi(get("--jobs", "100"));
  const int trials = std::stoi(get("--trials", "1000"));
  const int rungs = std::stoi(get("--rungs", "3"));
  const int eta = std::stoi(get("--eta", "3"));
  const double min_ms = std::stod(get("--min-ms", "50")), max_ms = std::stod(get("--max-ms", "500"));
  const auto seed = static_cast<std::uint64_t>(std::stoull(get("--seed", "1")));

  const auto world = distributed::make_communicator(environment, distributed::Backend::Auto, torch::kCPU);
  const auto started = Clock::now();
  std::unique_ptr<Journal> journal;
  std::unique_ptr<JobPlan> plan;
  double journal_replay_seconds = 0;
  double append_ms = 0;  // one journal record (write + fsync) on this file system
  if (world->rank() == 0) {
    fs::create_directories(dir);
    {
      Journal scratch(dir / "append-probe.jsonl");
      const auto before = Clock::now();
      for (int i = 0; i < 100; ++i) scratch.started("probe-" + std::to_string(i));
      append_ms = 1e3 * seconds_between(before, Clock::now()) / 100;
    }
    fs::remove(dir / "append-probe.jsonl");
    const auto before = Clock::now();
    journal = std::make_unique<Journal>(dir / "journal.jsonl");
    journal_replay_seconds = seconds_between(before, Clock::now());
    if (plan_kind == "asha") {
      plan = std::make_unique<SuccessiveHalving>(trials, std::vector<int>{0}, rungs, eta, "macro_f1");
    } else {
      std::vector<std::string> names;
      for (int j = 0; j < jobs; ++j) names.push_back("fold-" + std::to_string(j));
      plan = std::make_unique<FixedJobs>(names);
    }
  }
  JobScheduler scheduler(environment, *world, {});
  world->barrier("start");
  const auto run_started = Clock::now();

  // Each group leader's record: when each of its jobs began, and how long it slept.
  std::vector<double> latencies, first_job;
  double busy = 0;
  int ran = 0;
  auto previous_end = run_started;
  const auto statuses = scheduler.run(plan.get(), journal.get(), [&](const JobContext& context) {
    const auto begun = Clock::now();
    const bool leader = context.group.rank() == 0;
    if (leader) {
      if (ran == 0) first_job.push_back(seconds_between(run_started, begun));
      if (ran > 0) latencies.push_back(seconds_between(previous_end, begun));
    }
    const double sleep_ms = min_ms + (max_ms - min_ms) * fraction_of(context.assignment.job, seed, 1);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(sleep_ms));
    busy += sleep_ms / 1000;
    ++ran;
    previous_end = Clock::now();
    return json{{"macro_f1", fraction_of(context.assignment.job, seed, 2)}};
  });
  const double wall = seconds_between(run_started, Clock::now());

  // Every rank's record, through a file each (the scheduler's own channel is busy no more).
  {
    std::ofstream out(dir / ("rank-" + std::to_string(world->rank()) + ".json"));
    out << json{{"latencies", latencies}, {"first_job", first_job}, {"busy", busy}, {"ran", ran}}.dump();
  }
  world->barrier("records written");
  if (world->rank() != 0) return 0;
  std::vector<double> all_latencies, firsts;
  double total_busy = 0;
  int total_ran = 0;
  for (int r = 0; r < world->size(); ++r) {
    const auto record = json::parse(std::ifstream(dir / ("rank-" + std::to_string(r) + ".json")));
    for (const double l : record["latencies"]) all_latencies.push_back(l);
    for (const double f : record["first_job"]) firsts.push_back(f);
    total_busy += record["busy"].get<double>();
    total_ran += record["ran"].get<int>();
  }
  std::size_t finished = 0;
  for (const auto& [job, status] : statuses) finished += status.state == JobState::Finished ? 1 : 0;
  const auto journal_bytes = fs::file_size(dir / "journal.jsonl");
  const int groups = scheduler.group_count();
  std::cout << json{{"benchmark", "scheduler"},
                    {"plan", plan_kind},
                    {"ranks", world->size()},
                    {"groups", groups},
                    {"jobs_known", statuses.size()},
                    {"jobs_finished", finished},
                    {"jobs_run_now", total_ran},
                    {"wall_seconds", wall},
                    {"busy_seconds", total_busy},
                    {"ideal_seconds", total_busy / groups},
                    {"idle_fraction", wall > 0 ? 1 - total_busy / (groups * wall) : 0},
                    {"dispatch_ms_median", 1e3 * percentile(all_latencies, 0.5)},
                    {"dispatch_ms_p95", 1e3 * percentile(all_latencies, 0.95)},
                    {"dispatch_ms_max", 1e3 * percentile(all_latencies, 1.0)},
                    {"first_job_ms_max", 1e3 * percentile(firsts, 1.0)},
                    {"journal_bytes", journal_bytes},
                    {"journal_replay_ms", 1e3 * journal_replay_seconds},
                    {"journal_append_ms", append_ms},
                    {"startup_seconds", seconds_between(started, run_started)}}
                   .dump()
            << std::endl;
  return finished == statuses.size() ? 0 : 1;
}
