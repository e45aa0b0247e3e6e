#include "brainmri/experiments/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

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

Journal::Journal(std::filesystem::path file) : file_(std::move(file)) {
  std::vector<std::string> lines;
  {
    std::ifstream in(file_);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    json record;
    try {
      record = json::parse(lines[i]);
      apply(record);
    } catch (const std::exception& e) {
      if (i + 1 == lines.size()) break;  // the write the crash cut short
      throw std::runtime_error(file_.string() + ":" + std::to_string(i + 1) + ": not a journal record (" + e.what() +
                               "); the journal is damaged — move it away to start the experiment afresh");
    }
  }
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

void Journal::apply(const json& record) {
  auto& status = jobs_[record.at("job").get<std::string>()];
  status.state = job_state_from_string(record.at("state").get<std::string>());
  if (status.state == JobState::Running) ++status.attempts;
  if (status.state == JobState::Finished) status.result = record.value("result", json::object());
  if (status.state == JobState::Failed) {
    status.error = record.value("error", std::string());
    ++status.failures;
  }
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
  apply(stamped);
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
