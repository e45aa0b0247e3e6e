// The experiment journal and job scheduler. The scheduler tests run in every ctest entry of
// distributed_tests: as a world of one, and under mpirun with 2 and 3 ranks.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/experiments/journal.hpp"
#include "brainmri/experiments/scheduler.hpp"
#include "brainmri/experiments/search.hpp"

namespace brainmri::testing {
distributed::MpiEnvironment& mpi_environment();
}

namespace fs = std::filesystem;
using namespace brainmri;
using namespace brainmri::experiments;
using nlohmann::json;

namespace {

fs::path fresh_directory(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("brainmri-journal-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<json> journal_lines(const fs::path& file) {
  std::vector<json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

int count_records(const fs::path& file, const std::string& job, const std::string& state) {
  int n = 0;
  for (const auto& r : journal_lines(file)) n += r["job"] == job && r["state"] == state;
  return n;
}

}  // namespace

// --- Journal (single process) -----------------------------------------------------------------

TEST(Journal, ReplaysStatesAndClosesJobsThatWereRunningAsInterrupted) {
  const auto dir = fresh_directory("replay");
  const auto file = dir / "journal.jsonl";
  {
    Journal journal(file);
    journal.started("a");
    journal.finished("a", {{"f1", 0.9}});
    journal.started("b");
    journal.failed("b", "out of memory");
    journal.started("c");  // the process "dies" here
  }
  Journal journal(file);
  EXPECT_EQ(journal.status("a").state, JobState::Finished);
  EXPECT_EQ(journal.status("a").result["f1"], 0.9);
  EXPECT_EQ(journal.status("b").state, JobState::Failed);
  EXPECT_EQ(journal.status("b").failures, 1);
  EXPECT_EQ(journal.status("b").error, "out of memory");
  EXPECT_EQ(journal.status("c").state, JobState::Interrupted);
  EXPECT_EQ(journal.status("c").attempts, 1);
  EXPECT_EQ(journal.status("never").state, JobState::Pending);
  EXPECT_EQ(count_records(file, "c", "interrupted"), 1);  // written down, not only inferred
  fs::remove_all(dir);
}

TEST(Journal, ATornLastLineIsDroppedAndATornMiddleLineIsAnError) {
  const auto dir = fresh_directory("torn");
  const auto file = dir / "journal.jsonl";
  {
    Journal journal(file);
    journal.started("a");
    journal.finished("a", {});
  }
  { std::ofstream(file, std::ios::app) << R"({"job": "b", "sta)"; }  // a crash mid-write
  {
    Journal journal(file);
    EXPECT_EQ(journal.status("a").state, JobState::Finished);
    EXPECT_EQ(journal.status("b").state, JobState::Pending);
    journal.started("b");  // appends on a line of its own
  }
  {
    Journal journal(file);
    EXPECT_EQ(journal.status("b").state, JobState::Interrupted);
  }
  // Damage in the middle is not a crash artefact: refuse, naming the line.
  std::ofstream(dir / "bad.jsonl")
      << "{\"job\": \"a\", \"state\": \"running\"}\nnot json\n{\"job\": \"a\", \"state\": \"finished\"}\n";
  try {
    Journal bad(dir / "bad.jsonl");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Slurm array tasks: three coordinators of one ASHA search, each with its own journal in one
// directory, stepped in turn as independent processes would run. Each runs only its trials, waits
// (poll) when its next jobs depend on the others' results, and together they run every job of
// the search once, promote as one job does, and leave a directory that settled_jobs summarizes.
TEST(ArrayShare, TasksRunTheirTrialsOnceAndPromoteAsOneJobDoes) {
  const auto dir = fresh_directory("array");
  const auto score = [](const std::string& job) {
    const auto j = *TrialJob::parse(job);
    return json{{"macro_f1", std::fmod(j.trial * 0.6180339887, 1.0) * 0.5 + 0.1 * j.rung + 0.01 * j.fold}};
  };
  const auto owner = [](const std::string& job) { return TrialJob::parse(job)->trial; };
  SuccessiveHalving alone(12, {0, 1}, 3, 3, "macro_f1");
  Journal alone_journal(dir / "alone" / "journal.jsonl");
  Coordinator one(alone, alone_journal, 0);
  std::set<std::string> ran_alone;
  while (const auto a = one.next()) {
    ran_alone.insert(a->job);
    one.report(a->job, true, score(a->job), "");
  }
  ASSERT_TRUE(one.done());

  constexpr int kTasks = 3;
  const auto shared = dir / "array";
  std::vector<std::unique_ptr<SuccessiveHalving>> plans;
  std::vector<std::unique_ptr<ArrayShare>> shares;
  std::vector<std::unique_ptr<Journal>> journals;
  std::vector<std::unique_ptr<Coordinator>> tasks;
  for (int k = 0; k < kTasks; ++k) {
    plans.push_back(std::make_unique<SuccessiveHalving>(12, std::vector<int>{0, 1}, 3, 3, "macro_f1"));
    shares.push_back(std::make_unique<ArrayShare>(*plans.back(), k, kTasks, owner, shared, 0, true));
    journals.push_back(std::make_unique<Journal>(journal_file(shared, k)));
    tasks.push_back(std::make_unique<Coordinator>(*shares.back(), *journals.back(), 0));
  }
  std::map<std::string, int> ran_by;
  int waits = 0;
  for (int round = 0; round < 1000; ++round) {
    bool all_done = true;
    for (int k = 0; k < kTasks; ++k) {
      auto& task = *tasks[static_cast<std::size_t>(k)];
      if (task.done()) continue;
      all_done = false;
      auto a = task.next();
      if (!a && task.poll()) a = task.next();
      if (!a) {
        ++waits;
        continue;
      }
      EXPECT_EQ(TrialJob::parse(a->job)->trial % kTasks, k) << a->job;
      EXPECT_EQ(ran_by.count(a->job), 0u) << a->job << " ran twice";
      ran_by[a->job] = k;
      task.report(a->job, true, score(a->job), "");
    }
    if (all_done) break;
  }
  for (const auto& task : tasks) EXPECT_TRUE(task->done());
  EXPECT_GT(waits, 0) << "no task ever waited for another's results";
  std::set<std::string> ran_array;
  for (const auto& [job, k] : ran_by) ran_array.insert(job);
  EXPECT_EQ(ran_array, ran_alone);
  for (const auto& plan : plans) EXPECT_EQ(plan->ranking(), alone.ranking());
  SuccessiveHalving summary(12, {0, 1}, 3, 3, "macro_f1");
  const auto statuses = settled_jobs(shared, summary, 0, "tune");
  EXPECT_EQ(statuses.size(), ran_alone.size());
  EXPECT_EQ(summary.ranking(), alone.ranking());
  // A job that failed with a retry left is not settled: the summary names it.
  journals[1]->started("trial-0001/rung-0/fold-0");
  journals[1]->failed("trial-0001/rung-0/fold-0", "out of memory");
  SuccessiveHalving again(12, {0, 1}, 3, 3, "macro_f1");
  try {
    settled_jobs(shared, again, 1, "tune");
    ADD_FAILURE() << "settled_jobs accepted a job with a retry left";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not finished: trial-0001/rung-0/fold-0 (failed)"), std::string::npos)
        << e.what();
  }
}

TEST(Coordinator, RetriesAFailingJobThenGivesUpAndSkipsFinishedOnes) {
  const auto dir = fresh_directory("coordinator");
  Journal journal(dir / "journal.jsonl");
  journal.started("done");
  journal.finished("done", {});
  FixedJobs plan({"done", "flaky", "ok"});
  Coordinator coordinator(plan, journal, /*max_retries=*/2);
  std::vector<std::string> order;
  while (auto a = coordinator.next()) {
    order.push_back(a->job + "#" + std::to_string(a->attempt));
    coordinator.report(a->job, a->job == "ok", {}, a->job == "ok" ? "" : "boom");
  }
  EXPECT_TRUE(coordinator.done());
  EXPECT_EQ(order, (std::vector<std::string>{"flaky#1", "ok#1", "flaky#2", "flaky#3"}));
  EXPECT_EQ(journal.status("flaky").state, JobState::Failed);
  EXPECT_EQ(journal.status("flaky").failures, 3);
  // A rerun does not try a job that used up its retries, nor a finished one.
  Coordinator again(plan, journal, 2);
  EXPECT_FALSE(again.next().has_value());
  fs::remove_all(dir);
}

// --- Scheduler (world of one and under mpirun) -------------------------------------------------

namespace {

std::unique_ptr<distributed::Communicator> world_communicator() {
  return distributed::make_communicator(brainmri::testing::mpi_environment(), distributed::Backend::Auto, torch::kCPU,
                                        {std::chrono::seconds(60)});
}

fs::path shared_journal(distributed::Communicator& world, const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("brainmri-scheduler-" + name + "-" + std::to_string(world.size()) +
                                                "-" + std::to_string(::getppid()));
  if (world.rank() == 0) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  world.barrier("journal directory");
  return dir / "journal.jsonl";
}

}  // namespace

TEST(Scheduler, EveryJobRunsExactlyOnceAndEveryGroupWorks) {
  auto world = world_communicator();
  JobScheduler scheduler(brainmri::testing::mpi_environment(), *world, {1, 2});
  const auto file = shared_journal(*world, "once");
  std::unique_ptr<Journal> journal;
  if (world->rank() == 0) journal = std::make_unique<Journal>(file);
  std::vector<std::string> jobs;
  for (int i = 0; i < 24; ++i) jobs.push_back("job" + std::to_string(i));
  std::mt19937 random(static_cast<unsigned>(world->rank() + 1));
  int ran_here = 0;
  const auto statuses = scheduler.run(jobs, journal.get(), [&](const JobContext& context) {
    ++ran_here;
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + random() % 15));  // uneven lengths
    return json{{"square", std::stoi(context.assignment.job.substr(3)) * std::stoi(context.assignment.job.substr(3))}};
  });
  ASSERT_EQ(statuses.size(), jobs.size());
  for (int i = 0; i < 24; ++i) {
    const auto& s = statuses.at("job" + std::to_string(i));
    EXPECT_EQ(s.state, JobState::Finished);
    EXPECT_EQ(s.attempts, 1);
    EXPECT_EQ(s.result["square"], i * i);
  }
  auto counts = world->allgatherv(torch::tensor({ran_here}, torch::kInt64));
  EXPECT_EQ(counts.sum().item<std::int64_t>(), 24);  // exactly once in all
  if (world->size() > 1) {
    EXPECT_GT(counts.min().item<std::int64_t>(), 0) << counts;  // no group left idle
  }
  if (world->rank() == 0) {
    for (const auto& job : jobs) {
      EXPECT_EQ(count_records(file, job, "running"), 1) << job;
      EXPECT_EQ(count_records(file, job, "finished"), 1) << job;
    }
  }
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(file.parent_path());
}

TEST(Scheduler, FailingJobsAreRetriedThenMarkedFailedWhileTheOthersFinish) {
  auto world = world_communicator();
  JobScheduler scheduler(brainmri::testing::mpi_environment(), *world, {1, 1});
  const auto file = shared_journal(*world, "retry");
  std::unique_ptr<Journal> journal;
  if (world->rank() == 0) journal = std::make_unique<Journal>(file);
  const std::vector<std::string> jobs = {"good1", "always-fails", "good2", "fails-once", "good3"};
  const auto statuses = scheduler.run(jobs, journal.get(), [&](const JobContext& context) {
    if (context.assignment.job == "always-fails") throw std::runtime_error("deterministic failure");
    if (context.assignment.job == "fails-once" && context.assignment.attempt == 1) throw std::runtime_error("flaky");
    return json{{"attempt", context.assignment.attempt}};
  });
  EXPECT_EQ(statuses.at("always-fails").state, JobState::Failed);
  EXPECT_EQ(statuses.at("always-fails").failures, 2);  // the first attempt and one retry
  EXPECT_EQ(statuses.at("always-fails").error, "deterministic failure");
  EXPECT_EQ(statuses.at("fails-once").state, JobState::Finished);
  EXPECT_EQ(statuses.at("fails-once").result["attempt"], 2);
  for (const auto* job : {"good1", "good2", "good3"}) EXPECT_EQ(statuses.at(job).state, JobState::Finished);
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(file.parent_path());
}

TEST(Scheduler, ARerunSkipsFinishedJobsAndResumesInterruptedOnes) {
  auto world = world_communicator();
  const auto file = shared_journal(*world, "resume");
  if (world->rank() == 0) {
    Journal before(file);  // an earlier run: "a" finished, "b" was running when it was killed
    before.started("a");
    before.finished("a", {{"from", "first run"}});
    before.started("b");
  }
  world->barrier("journal written");
  JobScheduler scheduler(brainmri::testing::mpi_environment(), *world, {1, 2});
  std::unique_ptr<Journal> journal;
  if (world->rank() == 0) journal = std::make_unique<Journal>(file);
  std::vector<std::string> ran;
  const auto statuses = scheduler.run({"a", "b", "c"}, journal.get(), [&](const JobContext& context) {
    ran.push_back(context.assignment.job);
    if (context.assignment.job == "b") {
      EXPECT_TRUE(context.assignment.resume);
      EXPECT_EQ(context.assignment.attempt, 2);
    } else {
      EXPECT_FALSE(context.assignment.resume);
    }
    return json{{"from", "second run"}};
  });
  EXPECT_EQ(std::count(ran.begin(), ran.end(), "a"), 0);
  EXPECT_EQ(statuses.at("a").result["from"], "first run");
  EXPECT_EQ(statuses.at("b").state, JobState::Finished);
  EXPECT_EQ(statuses.at("c").state, JobState::Finished);
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(file.parent_path());
}

TEST(Scheduler, GroupsOfSeveralRanksRunEachJobTogether) {
  auto world = world_communicator();
  const int ranks_per_job = world->size();  // one group of every rank
  JobScheduler scheduler(brainmri::testing::mpi_environment(), *world, {ranks_per_job, 0});
  EXPECT_EQ(scheduler.group_count(), 1);
  EXPECT_EQ(scheduler.group().size(), world->size());
  const auto file = shared_journal(*world, "groups");
  std::unique_ptr<Journal> journal;
  if (world->rank() == 0) journal = std::make_unique<Journal>(file);
  const auto statuses = scheduler.run({"x", "y"}, journal.get(), [&](const JobContext& context) {
    auto one = torch::ones({1});
    context.group.allreduce(one, distributed::ReduceOp::Sum, "inside a job");  // data parallel inside the group
    return json{{"group_size", one.item<double>()}};
  });
  EXPECT_EQ(statuses.at("x").result["group_size"], world->size());
  EXPECT_EQ(statuses.at("y").state, JobState::Finished);
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(file.parent_path());
}

// A search plan that grows with the results: jobs of random lengths on every group, each run
// once, and the same promotions as the plan makes when fed the same results alone.
TEST(Scheduler, RunsTheJobsAPlanCreatesFromResults) {
  auto world = world_communicator();
  JobScheduler scheduler(brainmri::testing::mpi_environment(), *world, {1, 1});
  const auto file = shared_journal(*world, "plan");
  std::unique_ptr<Journal> journal;
  std::unique_ptr<SuccessiveHalving> plan;
  if (world->rank() == 0) {
    journal = std::make_unique<Journal>(file);
    plan = std::make_unique<SuccessiveHalving>(9, std::vector<int>{0, 1}, 3, 3, "score");
  }
  auto score = [](const TrialJob& j) { return std::fmod(j.trial * 0.7548776662, 1.0) + 0.01 * j.rung; };
  std::mt19937 random(static_cast<unsigned>(world->rank() + 7));
  const auto statuses = scheduler.run(plan.get(), journal.get(), [&](const JobContext& context) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + random() % 10));
    return json{{"score", score(*TrialJob::parse(context.assignment.job))}};
  });
  // Expected: the plan alone, results fed in job order.
  SuccessiveHalving alone(9, {0, 1}, 3, 3, "score");
  std::vector<std::string> queue = alone.initial_jobs();
  std::set<std::string> expected;
  while (!queue.empty()) {
    const auto job = queue.front();
    queue.erase(queue.begin());
    expected.insert(job);
    const auto more = alone.on_finished(job, {{"score", score(*TrialJob::parse(job))}});
    queue.insert(queue.end(), more.begin(), more.end());
  }
  EXPECT_EQ(expected.size(), 9u * 2 + 3u * 2 + 1u * 2);  // 9 -> 3 -> 1 trials, 2 folds each
  std::set<std::string> got;
  for (const auto& [job, status] : statuses) {
    got.insert(job);
    EXPECT_EQ(status.state, JobState::Finished) << job;
    EXPECT_EQ(status.attempts, 1) << job;
  }
  EXPECT_EQ(got, expected);
  if (world->rank() == 0) {
    EXPECT_EQ(plan->ranking(), alone.ranking());
    for (const auto& job : expected) EXPECT_EQ(count_records(file, job, "running"), 1) << job;
  }
  world->barrier("before cleanup");
  if (world->rank() == 0) fs::remove_all(file.parent_path());
}
