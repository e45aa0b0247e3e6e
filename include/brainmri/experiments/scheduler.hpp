#pragma once
// Runs the jobs of an experiment (folds, trials, stages) over the ranks of an MPI job.
//
// The world is split into groups of `ranks_per_job` ranks; each group runs one job at a time
// (data-parallel inside the group when it has several ranks, with a communicator of its own).
// World rank 0 coordinates from a thread of its own — so it can also lead a group — handing the
// next pending job to whichever group asks first: jobs of uneven length keep every group busy.
// Every start, result and failure goes to the Journal before anything else happens, so the same
// command resumes a killed experiment: finished jobs are not rerun, interrupted ones are rerun
// with `resume` set (the job continues from its own checkpoints), and a job that failed
// 1 + max_retries times stays failed while the others go on. On preemption (the signal of
// common/preemption.hpp) the running jobs write checkpoints and are journaled "interrupted", no
// new job starts, and run() throws PreemptionRequested on every rank.

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "brainmri/distributed/communicator.hpp"
#include "brainmri/distributed/message_channel.hpp"
#include "brainmri/distributed/mpi_environment.hpp"
#include "brainmri/experiments/journal.hpp"

namespace brainmri::experiments {

struct Assignment {
  std::string job;
  int attempt = 1;      // 1 for the first start
  bool resume = false;  // an earlier attempt was interrupted: continue from its checkpoints
};

// Which jobs an experiment has: a fixed list (the folds of a cross-validation), or a list that
// grows with the results (a search that promotes its best trials to longer training). Used by
// the coordinator on world rank 0 only. A plan must decide from the set of results alone, not
// from the order in which they arrive, so that a resumed experiment — which replays earlier
// results from the journal in another order — creates the same jobs.
class JobPlan {
 public:
  virtual ~JobPlan() = default;
  virtual std::vector<std::string> initial_jobs() = 0;
  // A job finished (now, or in an earlier run of the experiment): the jobs this makes possible.
  virtual std::vector<std::string> on_finished(const std::string& job, const nlohmann::json& result) = 0;
  // A job failed 1 + max_retries times and will not run again.
  virtual std::vector<std::string> on_failed(const std::string& job) = 0;
  // Whether jobs may still come from work done elsewhere (another array task), which poll()
  // looks for; the experiment is not done while it waits.
  virtual bool waiting() const { return false; }
  virtual std::vector<std::string> poll() { return {}; }
};

// A plan of fixed jobs.
class FixedJobs : public JobPlan {
 public:
  explicit FixedJobs(std::vector<std::string> jobs) : jobs_(std::move(jobs)) {}
  std::vector<std::string> initial_jobs() override { return jobs_; }
  std::vector<std::string> on_finished(const std::string&, const nlohmann::json&) override { return {}; }
  std::vector<std::string> on_failed(const std::string&) override { return {}; }

 private:
  std::vector<std::string> jobs_;
};

// Slurm array jobs: one task's share of an experiment that N independent jobs (array tasks) run
// at once in one directory. Task K runs the jobs whose owner index is K modulo N and journals
// them in its own journal-task-K.jsonl; it reads the other tasks' journals, never writes them.
// No file is written by two tasks, so nothing needs locking (which NFS and Lustre do not all
// offer). A plan whose jobs come from results (ASHA's promotions) is told every task's results,
// so each task promotes as one job would, and a task whose next jobs wait on other tasks'
// results polls their journals.
class ArrayShare : public JobPlan {
 public:
  // `owner(job)`: the job's owner index (the task is owner % tasks). `results_create_jobs`: the
  // inner plan makes jobs from results, so this task waits for the other tasks' results.
  ArrayShare(JobPlan& inner, int task, int tasks, std::function<int(const std::string&)> owner,
             std::filesystem::path directory, int max_retries, bool results_create_jobs);
  std::vector<std::string> initial_jobs() override;
  std::vector<std::string> on_finished(const std::string& job, const nlohmann::json& result) override;
  std::vector<std::string> on_failed(const std::string& job) override;
  bool waiting() const override { return results_create_jobs_ && !foreign_.empty(); }
  std::vector<std::string> poll() override;

 private:
  std::vector<std::string> own(const std::vector<std::string>& jobs);  // keeps foreign jobs in foreign_

  JobPlan& inner_;
  int task_;
  int tasks_;
  std::function<int(const std::string&)> owner_;
  std::filesystem::path directory_;
  int max_retries_;
  bool results_create_jobs_;
  std::set<std::string> foreign_;  // other tasks' jobs not yet settled
};

// A job that ended for good in this run of the experiment (finished, or failed past its retries),
// for a line per job while an experiment runs.
struct JobSettled {
  const std::string& job;
  const JobStatus& status;
  std::size_t settled = 0;      // jobs settled so far, earlier runs' included
  std::size_t known = 0;        // jobs the plan has made so far (a search makes more as it promotes)
  std::size_t settled_now = 0;  // of them, settled by this run
  double seconds = 0;           // since this run of the experiment started
};
// "[3/10 jobs] fold-2 finished: WHAT (2:03 so far, about 4:06 left)", or "... failed: ERROR".
std::string job_settled_line(const JobSettled& event, const std::string& what);
// A number of a job's result; NaN when the result lacks it or holds null (a failed job has no
// result; an undefined AUC travels as null).
double result_number(const nlohmann::json& result, const std::string& key);
using JobSettledObserver = std::function<void(const JobSettled&)>;

// The bookkeeping of rank 0, without any communication (unit-testable alone). Jobs that a plan
// creates from results go to the front of the queue: a promoted trial runs before new ones, as
// in ASHA, so the most promising work finishes first.
class Coordinator {
 public:
  Coordinator(JobPlan& plan, Journal& journal, int max_retries);
  std::optional<Assignment> next();  // a pending job, now marked running in the journal
  void report(const std::string& job, bool ok, const nlohmann::json& result, const std::string& error);
  // The job stopped for preemption with its checkpoints written: journaled "interrupted", so the
  // next run of the experiment resumes it.
  void interrupted(const std::string& job);
  // Preemption: no job is handed out any more.
  void stop() { stopping_ = true; }
  bool stopping() const { return stopping_; }
  bool done() const { return pending_.empty() && running_.empty() && !plan_.waiting(); }
  // Asks the plan for jobs made possible elsewhere (JobPlan::poll); true when some are pending.
  bool poll();
  bool has_pending() const { return !pending_.empty(); }
  bool waiting_elsewhere() const { return plan_.waiting(); }
  const std::vector<std::string>& jobs() const { return known_; }  // every job the plan made, in order
  JobSettledObserver on_settled;                                   // called as each job of this run settles

 private:
  void admit(const std::vector<std::string>& jobs, bool front);
  void failed_for_good(const std::string& job);

  JobPlan& plan_;
  Journal& journal_;
  int max_retries_;
  std::deque<std::string> pending_;
  std::set<std::string> running_;
  std::set<std::string> known_set_;
  std::vector<std::string> known_;
  std::map<std::string, int> failures_;  // this run's and earlier runs' failed attempts
  bool stopping_ = false;
  std::size_t settled_ = 0, settled_now_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  void settled(const std::string& job);
};

struct JobContext {
  const Assignment& assignment;
  distributed::Communicator& group;  // the ranks running this job together
};
// Runs one job on every rank of a group and returns its result (the group leader's is kept);
// throws on failure.
using JobBody = std::function<nlohmann::json(const JobContext&)>;

struct SchedulerOptions {
  int ranks_per_job = 1;
  int max_retries = 2;
  double poll_seconds = 5;             // between looks at other array tasks' journals while waiting on them
  JobSettledObserver on_settled = {};  // world rank 0, on the coordinator's thread
};

class JobScheduler {
 public:
  // Collective over `world`; its size must be a multiple of ranks_per_job.
  JobScheduler(const distributed::MpiEnvironment& environment, distributed::Communicator& world,
               SchedulerOptions options);
  ~JobScheduler();

  // Runs every job that the journal does not show finished (or failed for good) and returns the
  // final status of each job, on every rank. Collective; `journal` is used on world rank 0 only.
  std::map<std::string, JobStatus> run(const std::vector<std::string>& jobs, Journal* journal, const JobBody& body);
  // The same for the jobs of a plan (used on world rank 0 only; may be null elsewhere).
  std::map<std::string, JobStatus> run(JobPlan* plan, Journal* journal, const JobBody& body);

  distributed::Communicator& group() { return *group_; }
  int group_index() const { return group_index_; }
  int group_count() const { return group_count_; }

 private:
  void coordinate(Coordinator& coordinator);
  std::string exchange_with_coordinator(const std::string& report);

  const distributed::MpiEnvironment& environment_;
  distributed::Communicator& world_;
  SchedulerOptions options_;
  std::unique_ptr<distributed::Communicator> group_;
  int group_index_ = 0;
  int group_count_ = 1;
  std::unique_ptr<distributed::MessageChannel> control_;  // coordinator <-> group leaders; null in a world of one
};

// The status of every job of `plan` from the journals of the experiment in `directory` (every
// array task's), replayed as a resumed run would: each finished or failed-for-good job is told
// to the plan, which may make further jobs. Throws std::runtime_error naming the jobs that are
// not settled yet, and what to do (`command`: "cv" or "tune").
std::map<std::string, JobStatus> settled_jobs(const std::filesystem::path& directory, JobPlan& plan, int max_retries,
                                              const std::string& command);

// Sends `text` from `root` to every rank of `communicator`.
void broadcast_text(distributed::Communicator& communicator, std::string& text, int root);

}  // namespace brainmri::experiments
