#include "brainmri/experiments/scheduler.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "brainmri/common/log.hpp"
#include "brainmri/common/preemption.hpp"
#include "brainmri/common/progress.hpp"

namespace brainmri::experiments {
using nlohmann::json;

namespace {
constexpr int kRequestTag = 7101;  // leader -> coordinator: the last job's outcome, and "next?"
constexpr int kAssignTag = 7102;   // coordinator -> leader: a job, or {"done": true}

// Sleeps up to `seconds`, less if the preemption signal arrives.
void sleep_unless_preempted(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!preemption_requested() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

json assignment_json(const Assignment& a) { return {{"job", a.job}, {"attempt", a.attempt}, {"resume", a.resume}}; }

}  // namespace

void broadcast_text(distributed::Communicator& communicator, std::string& text, int root) {
  auto length = torch::tensor({static_cast<std::int64_t>(text.size())}, torch::kInt64);
  communicator.broadcast(length, root, "text length");
  text.resize(static_cast<std::size_t>(length.item<std::int64_t>()));
  if (text.empty()) return;
  auto bytes = torch::from_blob(text.data(), {static_cast<std::int64_t>(text.size())}, torch::kUInt8);
  communicator.broadcast(bytes, root, "text");
}

ArrayShare::ArrayShare(JobPlan& inner, int task, int tasks, std::function<int(const std::string&)> owner,
                       std::filesystem::path directory, int max_retries, bool results_create_jobs)
    : inner_(inner),
      task_(task),
      tasks_(tasks),
      owner_(std::move(owner)),
      directory_(std::move(directory)),
      max_retries_(max_retries),
      results_create_jobs_(results_create_jobs) {
  if (tasks_ < 1 || task_ < 0 || task_ >= tasks_) {
    throw std::invalid_argument("array task " + std::to_string(task_) + " of " + std::to_string(tasks_));
  }
}

std::vector<std::string> ArrayShare::own(const std::vector<std::string>& jobs) {
  std::vector<std::string> mine;
  for (const auto& job : jobs) {
    if (owner_(job) % tasks_ == task_) {
      mine.push_back(job);
    } else if (results_create_jobs_) {
      foreign_.insert(job);
    }
  }
  return mine;
}

std::vector<std::string> ArrayShare::initial_jobs() { return own(inner_.initial_jobs()); }
std::vector<std::string> ArrayShare::on_finished(const std::string& job, const json& result) {
  return own(inner_.on_finished(job, result));
}
std::vector<std::string> ArrayShare::on_failed(const std::string& job) { return own(inner_.on_failed(job)); }

std::vector<std::string> ArrayShare::poll() {
  std::vector<std::string> mine;
  if (foreign_.empty()) return mine;  // e.g. a CV array: no job waits on another task's result
  const auto elsewhere = read_experiment_journals(directory_);
  // Settling a job may create foreign jobs that are settled already: repeat until none is.
  for (bool settled_some = true; settled_some;) {
    settled_some = false;
    for (const auto& job : std::vector<std::string>(foreign_.begin(), foreign_.end())) {
      const auto found = elsewhere.find(job);
      if (found == elsewhere.end()) continue;
      const auto& status = found->second;
      std::vector<std::string> created;
      if (status.state == JobState::Finished) {
        foreign_.erase(job);
        created = on_finished(job, status.result);
      } else if (status.state == JobState::Failed && status.failures > max_retries_) {
        foreign_.erase(job);
        created = on_failed(job);
      } else {
        continue;
      }
      settled_some = true;
      mine.insert(mine.end(), created.begin(), created.end());
    }
  }
  return mine;
}

std::map<std::string, JobStatus> settled_jobs(const std::filesystem::path& directory, JobPlan& plan, int max_retries,
                                              const std::string& command) {
  const auto journals = read_experiment_journals(directory);
  std::map<std::string, JobStatus> statuses;
  std::string unsettled;
  std::deque<std::string> queue;
  const auto add = [&](const std::vector<std::string>& jobs) { queue.insert(queue.end(), jobs.begin(), jobs.end()); };
  add(plan.initial_jobs());
  while (!queue.empty()) {
    const auto job = queue.front();
    queue.pop_front();
    if (statuses.count(job)) continue;
    const auto found = journals.find(job);
    const auto status = found == journals.end() ? JobStatus{} : found->second;
    statuses[job] = status;
    if (status.state == JobState::Finished) {
      add(plan.on_finished(job, status.result));
    } else if (status.state == JobState::Failed && status.failures > max_retries) {
      add(plan.on_failed(job));
    } else {
      unsettled += (unsettled.empty() ? "" : ", ") + job + " (" + to_string(status.state) + ")";
    }
  }
  if (!unsettled.empty()) {
    throw std::runtime_error("the " + command + " in " + directory.string() + " is not finished: " + unsettled +
                             "; wait for its array tasks (squeue), or resubmit a task that ended early with its "
                             "directory: BRAINMRI_OUTPUT=" +
                             directory.string() + " sbatch --array=K ...");
  }
  return statuses;
}

Coordinator::Coordinator(JobPlan& plan, Journal& journal, int max_retries)
    : plan_(plan), journal_(journal), max_retries_(max_retries) {
  admit(plan_.initial_jobs(), false);
}

// Queues new jobs, except those an earlier run of the experiment already settled: their results
// are replayed to the plan, which may create further jobs.
void Coordinator::admit(const std::vector<std::string>& jobs, bool front) {
  std::vector<std::string> runnable;
  for (const auto& job : jobs) {
    if (!known_set_.insert(job).second) continue;
    known_.push_back(job);
    const auto status = journal_.status(job);
    if (status.state == JobState::Finished) {
      ++settled_;
      admit(plan_.on_finished(job, status.result), true);
      continue;
    }
    // Failed attempts of earlier runs count against the retry limit; interrupted ones do not.
    if (status.state == JobState::Failed && status.failures > max_retries_) {
      ++settled_;
      admit(plan_.on_failed(job), true);
      continue;
    }
    failures_[job] = status.failures;
    runnable.push_back(job);
  }
  if (front) {
    pending_.insert(pending_.begin(), runnable.begin(), runnable.end());
  } else {
    pending_.insert(pending_.end(), runnable.begin(), runnable.end());
  }
}

std::optional<Assignment> Coordinator::next() {
  if (pending_.empty()) return std::nullopt;
  Assignment a;
  a.job = pending_.front();
  pending_.pop_front();
  const auto before = journal_.status(a.job);
  a.resume = before.state == JobState::Interrupted;
  a.attempt = before.attempts + 1;
  journal_.started(a.job);
  running_.insert(a.job);
  return a;
}

void Coordinator::report(const std::string& job, bool ok, const json& result, const std::string& error) {
  if (running_.erase(job) == 0) throw std::logic_error("a result for job '" + job + "', which is not running");
  if (ok) {
    journal_.finished(job, result);
    admit(plan_.on_finished(job, result), true);
    settled(job);
    return;
  }
  journal_.failed(job, error);
  if (++failures_[job] <= max_retries_) {
    pending_.push_back(job);  // retried after the others
  } else {
    admit(plan_.on_failed(job), true);
    settled(job);
  }
}

void Coordinator::settled(const std::string& job) {
  ++settled_;
  ++settled_now_;
  if (!on_settled) return;
  const auto status = journal_.status(job);
  // What watches the experiment (lines, live tables) must never stop it: the journal already has
  // the job, and an exception here would end the coordinator's thread or be taken for the job's.
  try {
    on_settled({job, status, settled_, known_.size(), settled_now_,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()});
  } catch (const std::exception& e) {
    logging::error("brainmri: could not report the end of job " + job + ": " + e.what());
  }
}

double result_number(const json& result, const std::string& key) {
  if (!result.is_object()) return NAN;
  const auto found = result.find(key);
  return found != result.end() && found->is_number() ? found->get<double>() : NAN;
}

std::string job_settled_line(const JobSettled& event, const std::string& what) {
  const bool finished = event.status.state == JobState::Finished;
  std::string line = "[" + std::to_string(event.settled) + "/" + std::to_string(event.known) + " jobs] " + event.job +
                     (finished ? " finished: " + what : " failed: " + event.status.error.substr(0, 200)) + " (" +
                     format_duration(event.seconds) + " so far";
  const auto left = event.known - std::min(event.known, event.settled);
  if (left > 0 && event.settled_now > 0) {
    line += ", about " +
            format_duration(event.seconds / static_cast<double>(event.settled_now) * static_cast<double>(left)) +
            " left";
  }
  return line + ")";
}

bool Coordinator::poll() {
  admit(plan_.poll(), true);
  return has_pending();
}

void Coordinator::interrupted(const std::string& job) {
  if (running_.erase(job) == 0) throw std::logic_error("job '" + job + "' was interrupted but is not running");
  journal_.interrupted(job);
  pending_.push_front(job);
}

JobScheduler::JobScheduler(const distributed::MpiEnvironment& environment, distributed::Communicator& world,
                           SchedulerOptions options)
    : environment_(environment), world_(world), options_(options) {
  if (options_.ranks_per_job < 1 || world_.size() % options_.ranks_per_job != 0) {
    throw std::invalid_argument("ranks per job (" + std::to_string(options_.ranks_per_job) + ") do not divide the " +
                                std::to_string(world_.size()) + " ranks of this job");
  }
  group_count_ = world_.size() / options_.ranks_per_job;
  group_index_ = world_.rank() / options_.ranks_per_job;
  group_ = world_.split(group_index_, world_.rank());
  if (group_count_ > 1 || world_.size() > 1) {
    control_ = std::make_unique<distributed::MessageChannel>(environment_);  // the coordinator is a thread
  }
}

JobScheduler::~JobScheduler() = default;

void JobScheduler::coordinate(Coordinator& coordinator) {
  std::deque<int> idle;  // leaders waiting for work
  int released = 0;
  while (released < group_count_) {
    int leader = -1;
    const auto request = json::parse(control_->receive(distributed::MessageChannel::kAnySource, kRequestTag, &leader));
    if (request.value("stop", false)) coordinator.stop();
    if (request.contains("job")) {
      if (request.value("preempted", false)) {
        coordinator.interrupted(request.at("job").get<std::string>());
      } else {
        coordinator.report(request.at("job").get<std::string>(), request.at("ok").get<bool>(),
                           request.value("result", json::object()), request.value("error", std::string()));
      }
    }
    idle.push_back(leader);
    // A group never idles while a job is pending; it is released once nothing can come any more
    // (a running job that fails may still put itself back in the queue), or at once on preemption.
    if (!idle.empty() && !coordinator.has_pending() && !coordinator.stopping()) coordinator.poll();
    while (!idle.empty() && coordinator.has_pending() && !coordinator.stopping()) {
      const auto assignment = coordinator.next();
      logging::debug("job " + assignment->job + " (attempt " + std::to_string(assignment->attempt) +
                     (assignment->resume ? ", resumed" : "") + ") to the group led by rank " +
                     std::to_string(idle.front()));
      control_->send(assignment_json(*assignment).dump(), idle.front(), kAssignTag);
      idle.pop_front();
    }
    if (coordinator.done() || coordinator.stopping()) {
      for (const int waiting : idle) control_->send(json{{"done", true}}.dump(), waiting, kAssignTag);
      released += static_cast<int>(idle.size());
      idle.clear();
    } else if (!coordinator.has_pending() && coordinator.waiting_elsewhere()) {
      // Only work of other array tasks can bring jobs: the idle groups ask again after a pause.
      for (const int waiting : idle) control_->send(json{{"wait", options_.poll_seconds}}.dump(), waiting, kAssignTag);
      idle.clear();
    }
  }
}

std::string JobScheduler::exchange_with_coordinator(const std::string& report) {
  control_->send(report, 0, kRequestTag);
  return control_->receive(0, kAssignTag);
}

std::map<std::string, JobStatus> JobScheduler::run(const std::vector<std::string>& jobs, Journal* journal,
                                                   const JobBody& body) {
  FixedJobs plan(jobs);
  return run(&plan, journal, body);
}

std::map<std::string, JobStatus> JobScheduler::run(JobPlan* plan, Journal* journal, const JobBody& body) {
  const bool coordinator_rank = world_.rank() == 0;
  if (coordinator_rank && (journal == nullptr || plan == nullptr)) {
    throw std::invalid_argument("rank 0 needs the experiment's plan and journal");
  }
  std::unique_ptr<Coordinator> coordinator;
  if (coordinator_rank) {
    coordinator = std::make_unique<Coordinator>(*plan, *journal, options_.max_retries);
    coordinator->on_settled = options_.on_settled;
  }

  if (!control_) {
    // A world of one: the same bookkeeping, in this thread.
    while (!preemption_requested()) {
      auto assignment = coordinator->next();
      if (!assignment && !coordinator->done()) {  // waiting on other array tasks' results
        sleep_unless_preempted(options_.poll_seconds);
        coordinator->poll();
        continue;
      }
      if (!assignment) break;
      try {
        coordinator->report(assignment->job, true, body({*assignment, *group_}), "");
      } catch (const PreemptionRequested&) {
        coordinator->interrupted(assignment->job);
      } catch (const c10::Error& e) {
        coordinator->report(assignment->job, false, {}, e.what_without_backtrace());
      } catch (const std::exception& e) {
        coordinator->report(assignment->job, false, {}, e.what());
      }
    }
  } else {
    std::thread coordinator_thread;
    if (coordinator_rank) coordinator_thread = std::thread([&] { coordinate(*coordinator); });
    const bool leader = group_->rank() == 0;
    json report = {{"stop", preemption_requested()}};
    for (;;) {
      std::string message = leader ? exchange_with_coordinator(report.dump()) : std::string();
      broadcast_text(*group_, message, 0);
      const auto assignment_message = json::parse(message);
      if (assignment_message.value("done", false)) break;
      if (assignment_message.contains("wait")) {
        sleep_unless_preempted(assignment_message.at("wait").get<double>());
        report = {{"stop", preemption_requested()}};
        continue;
      }
      const Assignment assignment{assignment_message.at("job").get<std::string>(),
                                  assignment_message.at("attempt").get<int>(),
                                  assignment_message.at("resume").get<bool>()};
      json result;
      std::string error;
      bool preempted = false;
      try {
        result = body({assignment, *group_});
      } catch (const PreemptionRequested&) {
        preempted = true;  // every rank of the group stopped at the same step
      } catch (const c10::Error& e) {
        error = e.what_without_backtrace();
      } catch (const std::exception& e) {
        error = std::string(e.what()).empty() ? "unknown error" : e.what();
      }
      // A job fails if it failed on any rank of its group; the group stops taking jobs if any of
      // its ranks was signalled.
      auto outcome = torch::tensor({error.empty() ? 0 : 1, preemption_requested() ? 1 : 0}, torch::kInt32);
      group_->allreduce(outcome, distributed::ReduceOp::Sum, "job outcome");
      if (outcome[0].item<int>() > 0 && error.empty() && !preempted) error = "failed on another rank of its group";
      report = {{"job", assignment.job}, {"ok", error.empty()},    {"result", result},
                {"error", error},        {"preempted", preempted}, {"stop", outcome[1].item<int>() > 0}};
    }
    if (coordinator_thread.joinable()) coordinator_thread.join();
  }

  // Every rank leaves with the journal's view of the experiment.
  std::string summary;
  if (coordinator_rank) {
    json statuses = json::object();
    for (const auto& job : coordinator->jobs()) {
      const auto s = journal->status(job);
      statuses[job] = {{"state", to_string(s.state)},
                       {"attempts", s.attempts},
                       {"failures", s.failures},
                       {"result", s.result},
                       {"error", s.error}};
    }
    const bool stopped_early = !coordinator->done() && (coordinator->stopping() || preemption_requested());
    summary = json{{"preempted", stopped_early}, {"jobs", statuses}}.dump();
  }
  broadcast_text(world_, summary, 0);
  std::map<std::string, JobStatus> out;
  const json parsed = json::parse(summary);
  // Every rank stops together, after the journal has the interrupted jobs: no caller can go on to
  // summarize an experiment that is only partly done.
  if (parsed.at("preempted").get<bool>()) throw PreemptionRequested();
  for (auto it = parsed.at("jobs").begin(); it != parsed.at("jobs").end(); ++it) {
    const json& s = it.value();
    out[it.key()] = JobStatus{job_state_from_string(s.at("state").get<std::string>()), s.at("attempts").get<int>(),
                              s.at("failures").get<int>(), s.at("result"), s.at("error").get<std::string>()};
  }
  return out;
}

}  // namespace brainmri::experiments
