#pragma once
// The durable record of an experiment's jobs (a fold of a cross-validation, a trial of a
// search, a stage): an append-only JSON-lines file, fsynced after every line, replayed on start.
// It is what lets a killed experiment resume: a job whose last record is "finished" is never run
// again; one whose last record is "running" was interrupted (the process died) and restarts from
// its own checkpoints; one that failed `max_retries` times stays failed.

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace brainmri::experiments {

enum class JobState { Pending, Running, Finished, Failed, Interrupted };
std::string to_string(JobState state);
JobState job_state_from_string(const std::string& text);  // throws std::invalid_argument

struct JobStatus {
  JobState state = JobState::Pending;
  int attempts = 0;       // times the job was started
  int failures = 0;       // attempts that failed (interrupted ones are not failures)
  nlohmann::json result;  // of the finished attempt
  std::string error;      // of the last failed attempt
};

// The jobs of a journal that another process may be appending to (an array task reading its
// siblings' journals, a summary reading them all), read without changing it: a torn last line
// (a write in progress) is left out; jobs last recorded running are reported Running. A missing
// file has no jobs.
std::map<std::string, JobStatus> read_journal(const std::filesystem::path& file);

// The journals of the experiment in `directory`: journal.jsonl and the array tasks'
// journal-task-K.jsonl, merged (a job settled in any of them counts as settled there).
std::map<std::string, JobStatus> read_experiment_journals(const std::filesystem::path& directory);

// The journal of array task `task` (journal-task-K.jsonl), or journal.jsonl for a job alone (-1).
std::filesystem::path journal_file(const std::filesystem::path& directory, int task);

class Journal {
 public:
  // Opens (creating) `file` and replays it. Records of jobs that were running when the writer
  // died are closed with an "interrupted" record. A torn last line (a crash mid-write) is
  // dropped; a torn line elsewhere is an error naming the line.
  explicit Journal(std::filesystem::path file);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::map<std::string, JobStatus>& jobs() const { return jobs_; }
  JobStatus status(const std::string& job) const;  // Pending for an unknown job

  void started(const std::string& job);
  void finished(const std::string& job, const nlohmann::json& result);
  void failed(const std::string& job, const std::string& error);
  void interrupted(const std::string& job);  // stopped on purpose (preemption); resumes next time
  const std::filesystem::path& file() const { return file_; }

 private:
  void append(const nlohmann::json& record);

  std::filesystem::path file_;
  int descriptor_ = -1;
  std::map<std::string, JobStatus> jobs_;
};

}  // namespace brainmri::experiments
