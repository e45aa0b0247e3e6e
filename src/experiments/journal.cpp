#include "brainmri/experiments/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace brainmri::experiments {
using nlohmann::json;

std::string to_string(JobState state) {
  switch (state) {
    case JobState::Pending: return "pending";
    case JobState::Running: return "running";
    case JobState::Finished: return "finished";
    case JobState::Failed: return "failed";
    case JobState::Interrupted: return "interrupted";
  }
  return "?";
}

JobState job_state_from_string(const std::string& text) {
  for (const auto state :
       {JobState::Pending, JobState::Running, JobState::Finished, JobState::Failed, JobState::Interrupted}) {
    if (to_string(state) == text) return state;
  }
  throw std::invalid_argument("unknown job state '" + text + "'");
}

namespace {

void apply_record(std::map<std::string, JobStatus>& jobs, const json& record) {
  auto& status = jobs[record.at("job").get<std::string>()];
  status.state = job_state_from_string(record.at("state").get<std::string>());
  if (status.state == JobState::Running) ++status.attempts;
  if (status.state == JobState::Finished) status.result = record.value("result", json::object());
  if (status.state == JobState::Failed) {
    status.error = record.value("error", std::string());
    ++status.failures;
  }
}

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Replays `lines` into `jobs`; a torn last line is left out, a torn line elsewhere is an error.
void replay(const std::vector<std::string>& lines, const std::filesystem::path& file,
            std::map<std::string, JobStatus>& jobs) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      apply_record(jobs, json::parse(lines[i]));
    } catch (const std::exception& e) {
      if (i + 1 == lines.size()) break;  // the write the crash cut short, or one in progress
      throw std::runtime_error(file.string() + ":" + std::to_string(i + 1) + ": not a journal record (" + e.what() +
                               "); the journal is damaged — move it away to start the experiment afresh");
    }
  }
}

// The more settled of two records of one job (finished, then failed, then the rest).
int settledness(JobState state) {
  return state == JobState::Finished ? 3 : state == JobState::Failed ? 2 : state == JobState::Interrupted ? 1 : 0;
}

}  // namespace

std::map<std::string, JobStatus> read_journal(const std::filesystem::path& file) {
  std::map<std::string, JobStatus> jobs;
  replay(read_lines(file), file, jobs);
  return jobs;
}

std::filesystem::path journal_file(const std::filesystem::path& directory, int task) {
  return directory / (task < 0 ? std::string("journal.jsonl") : "journal-task-" + std::to_string(task) + ".jsonl");
}

std::map<std::string, JobStatus> read_experiment_journals(const std::filesystem::path& directory) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    const auto name = entry.path().filename().string();
    if (name == "journal.jsonl" || (name.starts_with("journal-task-") && name.ends_with(".jsonl"))) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::map<std::string, JobStatus> merged;
  for (const auto& file : files) {
    for (auto& [job, status] : read_journal(file)) {
      const auto found = merged.find(job);
      if (found == merged.end() || settledness(status.state) > settledness(found->second.state)) {
        merged[job] = std::move(status);
      }
    }
  }
  return merged;
}

Journal::Journal(std::filesystem::path file) : file_(std::move(file)) {
  const auto lines = read_lines(file_);
  replay(lines, file_, jobs_);
  if (!file_.parent_path().empty()) std::filesystem::create_directories(file_.parent_path());
  descriptor_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (descriptor_ < 0) throw std::system_error(errno, std::generic_category(), "cannot open journal " + file_.string());
  if (!lines.empty() && !lines.back().empty() && !json::accept(lines.back())) {
    // A torn last line: cut it off, so that the next record does not follow it.
    std::uintmax_t kept = 0;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) kept += lines[i].size() + 1;
    if (::ftruncate(descriptor_, static_cast<off_t>(kept)) != 0 || ::fsync(descriptor_) != 0) {
      throw std::system_error(errno, std::generic_category(), "cannot repair journal " + file_.string());
    }
  }
  for (auto& [job, status] : jobs_) {
    if (status.state == JobState::Running) append({{"job", job}, {"state", "interrupted"}});
  }
}

Journal::~Journal() {
  if (descriptor_ >= 0) ::close(descriptor_);
}

JobStatus Journal::status(const std::string& job) const {
  const auto found = jobs_.find(job);
  return found == jobs_.end() ? JobStatus{} : found->second;
}

void Journal::append(const json& record) {
  auto stamped = record;
  stamped["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string line = stamped.dump() + "\n";
  // One write of the whole line with O_APPEND, then fsync: a crash leaves at most a torn last line.
  const auto written = ::write(descriptor_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size()) || ::fsync(descriptor_) != 0) {
    throw std::system_error(errno, std::generic_category(), "cannot append to journal " + file_.string());
  }
  apply_record(jobs_, stamped);
}

void Journal::started(const std::string& job) { append({{"job", job}, {"state", "running"}}); }
void Journal::finished(const std::string& job, const json& result) {
  append({{"job", job}, {"state", "finished"}, {"result", result}});
}
void Journal::interrupted(const std::string& job) { append({{"job", job}, {"state", "interrupted"}}); }
void Journal::failed(const std::string& job, const std::string& error) {
  append({{"job", job}, {"state", "failed"}, {"error", error}});
}

}  // namespace brainmri::experiments
