#include "brainmri/experiments/search.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace brainmri::experiments {
using nlohmann::json;

namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

double parse_number(const std::string& text, const std::string& spec) {
  try {
    std::size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("'" + text + "' in search '" + spec + "' is not a number");
}

// SplitMix64: a small, well-mixed generator whose output is the same on every platform (the
// standard library's distributions are not).
std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

double unit_interval(std::uint64_t seed, int trial, int parameter) {
  const std::uint64_t bits =
      mix(mix(mix(seed) ^ static_cast<std::uint64_t>(trial)) ^ static_cast<std::uint64_t>(parameter));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace

ParameterSpace ParameterSpace::parse(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    throw std::invalid_argument("search '" + text + "' is not 'NAME: KIND ARGS' (e.g. 'lr: loguniform 1e-5 1e-2')");
  }
  ParameterSpace p;
  p.name = trim(text.substr(0, colon));
  if (p.name.empty()) throw std::invalid_argument("search '" + text + "' has no option name before ':'");
  std::istringstream words(text.substr(colon + 1));
  std::vector<std::string> args;
  words >> p.kind;
  for (std::string w; words >> w;) args.push_back(w);
  if (p.kind == "choice") {
    if (args.empty()) throw std::invalid_argument("search '" + text + "': choice needs at least one value");
    p.choices = args;
    return p;
  }
  if (p.kind != "loguniform" && p.kind != "uniform" && p.kind != "int") {
    throw std::invalid_argument("search '" + text + "': unknown kind '" + p.kind +
                                "' (expected loguniform, uniform, int or choice)");
  }
  if (args.size() != 2) throw std::invalid_argument("search '" + text + "': " + p.kind + " needs LOW HIGH");
  p.low = parse_number(args[0], text);
  p.high = parse_number(args[1], text);
  if (!(p.low < p.high) && !(p.kind == "int" && p.low == p.high)) {
    throw std::invalid_argument("search '" + text + "': LOW must be below HIGH");
  }
  if (p.kind == "loguniform" && p.low <= 0)
    throw std::invalid_argument("search '" + text + "': loguniform needs LOW > 0");
  if (p.kind == "int" && (p.low != std::floor(p.low) || p.high != std::floor(p.high))) {
    throw std::invalid_argument("search '" + text + "': int needs integer bounds");
  }
  return p;
}

std::string ParameterSpace::value_at(double u) const {
  if (kind == "choice") {
    const auto i = std::min(choices.size() - 1, static_cast<std::size_t>(u * static_cast<double>(choices.size())));
    return choices[i];
  }
  if (kind == "int") {
    const double span = high - low + 1;
    return std::to_string(static_cast<long long>(std::min(high, low + std::floor(u * span))));
  }
  if (kind == "loguniform") return number_text(std::exp(std::log(low) + u * (std::log(high) - std::log(low))));
  return number_text(low + u * (high - low));
}

std::vector<std::string> ParameterSpace::grid(int points) const {
  if (kind == "choice") return choices;
  if (points < 2) throw std::invalid_argument("a grid needs at least 2 points per numeric parameter");
  std::vector<std::string> values;
  if (kind == "int" && high - low + 1 <= points) {
    for (auto v = static_cast<long long>(low); v <= static_cast<long long>(high); ++v)
      values.push_back(std::to_string(v));
    return values;
  }
  for (int i = 0; i < points; ++i) {
    const double f = static_cast<double>(i) / (points - 1);
    std::string value;
    if (kind == "loguniform") {
      value = number_text(std::exp(std::log(low) + f * (std::log(high) - std::log(low))));
    } else if (kind == "int") {
      value = std::to_string(std::llround(low + f * (high - low)));
    } else {
      value = number_text(low + f * (high - low));
    }
    if (values.empty() || values.back() != value) values.push_back(value);
  }
  return values;
}

std::vector<TrialParameters> grid_trials(const std::vector<ParameterSpace>& space, int points) {
  if (space.empty())
    throw std::invalid_argument("the search space is empty: give at least one 'search = NAME: KIND ARGS'");
  std::vector<std::vector<std::string>> axes;
  double combinations = 1;
  for (const auto& p : space) {
    axes.push_back(p.grid(points));
    combinations *= static_cast<double>(axes.back().size());
  }
  if (combinations > 100000) {
    throw std::invalid_argument("the grid has " + number_text(combinations) + " combinations; use random or asha");
  }
  std::vector<TrialParameters> trials(static_cast<std::size_t>(combinations));
  for (std::size_t t = 0; t < trials.size(); ++t) {
    std::size_t rest = t;
    TrialParameters parameters(space.size());
    for (std::size_t i = space.size(); i-- > 0;) {  // the last parameter varies fastest
      parameters[i] = {space[i].name, axes[i][rest % axes[i].size()]};
      rest /= axes[i].size();
    }
    trials[t] = parameters;
  }
  return trials;
}

std::vector<TrialParameters> random_trials(const std::vector<ParameterSpace>& space, int trials, std::uint64_t seed) {
  if (space.empty())
    throw std::invalid_argument("the search space is empty: give at least one 'search = NAME: KIND ARGS'");
  if (trials < 1) throw std::invalid_argument("a search needs at least 1 trial");
  std::vector<TrialParameters> out;
  for (int t = 0; t < trials; ++t) {
    TrialParameters parameters;
    for (std::size_t i = 0; i < space.size(); ++i) {
      parameters.emplace_back(space[i].name, space[i].value_at(unit_interval(seed, t, static_cast<int>(i))));
    }
    out.push_back(parameters);
  }
  return out;
}

std::vector<int> rung_epochs(int min_epochs, int max_epochs, int reduction_factor) {
  if (min_epochs < 1 || max_epochs < min_epochs) {
    throw std::invalid_argument("rung budgets need 1 <= min epochs <= max epochs, got " + std::to_string(min_epochs) +
                                " and " + std::to_string(max_epochs));
  }
  if (reduction_factor < 2) throw std::invalid_argument("the reduction factor must be >= 2");
  const int rungs = static_cast<int>(std::floor(std::log(static_cast<double>(max_epochs) / min_epochs) /
                                                    std::log(static_cast<double>(reduction_factor)) +
                                                1e-9)) +
                    1;
  std::vector<int> budgets;
  for (int k = 0; k < rungs; ++k) {
    const int b = std::max(1, static_cast<int>(std::lround(max_epochs / std::pow(reduction_factor, rungs - 1 - k))));
    if (budgets.empty() || b > budgets.back()) budgets.push_back(b);
  }
  return budgets;
}

std::string TrialJob::name() const {
  char text[64];
  std::snprintf(text, sizeof(text), "trial-%04d/rung-%d/fold-%d", trial, rung, fold);
  return text;
}

std::optional<TrialJob> TrialJob::parse(const std::string& name) {
  TrialJob job;
  int used = 0;
  if (std::sscanf(name.c_str(), "trial-%d/rung-%d/fold-%d%n", &job.trial, &job.rung, &job.fold, &used) != 3 ||
      used != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return job;
}

SuccessiveHalving::SuccessiveHalving(int trials, std::vector<int> folds, int rungs, int reduction_factor,
                                     std::string objective)
    : rungs_(rungs),
      reduction_factor_(reduction_factor),
      objective_(std::move(objective)),
      folds_(std::move(folds)),
      trials_(static_cast<std::size_t>(trials)),
      order_(static_cast<std::size_t>(rungs)),
      outcome_(static_cast<std::size_t>(rungs)),
      decided_(static_cast<std::size_t>(rungs), 0),
      promoted_(static_cast<std::size_t>(rungs)) {
  if (trials < 1 || rungs < 1 || folds_.empty() || reduction_factor < 2) {
    throw std::invalid_argument("successive halving needs trials, rungs and folds >= 1 and a reduction factor >= 2");
  }
  for (int t = 0; t < trials; ++t) order_[0].push_back(t);
}

std::vector<std::string> SuccessiveHalving::jobs_of(int trial, int rung) const {
  std::vector<std::string> jobs;
  for (const int fold : folds_) jobs.push_back(TrialJob{trial, rung, fold}.name());
  return jobs;
}

std::vector<std::string> SuccessiveHalving::initial_jobs() {
  std::vector<std::string> jobs;
  for (int t = 0; t < static_cast<int>(trials_.size()); ++t) {
    const auto trial_jobs = jobs_of(t, 0);
    jobs.insert(jobs.end(), trial_jobs.begin(), trial_jobs.end());
  }
  return jobs;
}

std::optional<TrialJob> SuccessiveHalving::own_job(const std::string& name) const {
  const auto j = TrialJob::parse(name);
  if (!j || j->trial < 0 || j->trial >= static_cast<int>(trials_.size()) || j->rung < 0 || j->rung >= rungs_)
    return std::nullopt;
  return j;
}

std::vector<std::string> SuccessiveHalving::on_finished(const std::string& job, const json& result) {
  const auto j = own_job(job);
  if (!j) return {};
  trials_[j->trial].results[j->rung][j->fold] = result;
  auto& settled = done_[{j->trial, j->rung}];
  settled.insert(j->fold);
  if (settled.size() < folds_.size()) return {};
  std::optional<double> score = 0.0;
  for (const int fold : folds_) {
    const auto& fold_results = trials_[j->trial].results[j->rung];
    const auto it = fold_results.find(fold);
    const json* value = it == fold_results.end() || !it->second.is_object() || !it->second.contains(objective_)
                            ? nullptr
                            : &it->second.at(objective_);
    if (value == nullptr || !value->is_number() || !std::isfinite(value->get<double>())) {
      score.reset();
      break;
    }
    *score += value->get<double>() / static_cast<double>(folds_.size());
  }
  return rung_complete(j->trial, j->rung, score);
}

std::vector<std::string> SuccessiveHalving::on_failed(const std::string& job) {
  const auto j = own_job(job);
  if (!j) return {};
  trials_[j->trial].failed = true;
  auto& settled = done_[{j->trial, j->rung}];
  settled.insert(j->fold);
  if (settled.size() < folds_.size()) return {};
  return rung_complete(j->trial, j->rung, std::nullopt);
}

std::vector<std::string> SuccessiveHalving::rung_complete(int trial, int rung, std::optional<double> score) {
  auto& t = trials_[trial];
  if (score && !t.failed) {
    t.highest_rung = rung;
    t.score_by_rung.push_back(*score);
  } else {
    t.failed = true;
  }
  outcome_[rung][trial] = score && !t.failed ? *score : -std::numeric_limits<double>::infinity();
  if (rung + 1 >= rungs_) return {};

  // Settle the rung's results one at a time in their fixed order; after each, promote until 1/eta
  // of the settled trials have gone on: the best not yet promoted first (ties: the earlier in the
  // order). One at a time, so that results arriving together decide as if they came in order.
  auto& order = order_[rung];
  auto& decided = decided_[rung];
  std::vector<std::string> jobs;
  while (decided < order.size() && outcome_[rung].count(order[decided]) > 0) {
    ++decided;
    const std::size_t quota = decided / static_cast<std::size_t>(reduction_factor_);
    while (promoted_[rung].size() < quota) {
      int best = -1;
      double best_score = -std::numeric_limits<double>::infinity();
      for (std::size_t i = 0; i < decided; ++i) {
        const int candidate = order[i];
        const double s = outcome_[rung].at(candidate);
        if (promoted_[rung].count(candidate) > 0 || !std::isfinite(s)) continue;
        if (best < 0 || s > best_score) {
          best = candidate;
          best_score = s;
        }
      }
      if (best < 0) break;
      promoted_[rung].insert(best);
      order_[rung + 1].push_back(best);
      const auto next = jobs_of(best, rung + 1);
      jobs.insert(jobs.end(), next.begin(), next.end());
    }
  }
  return jobs;
}

std::vector<int> SuccessiveHalving::ranking() const {
  std::vector<int> ids(trials_.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i);
  auto key_score = [&](int id) {
    const auto& t = trials_[id];
    return t.score_by_rung.empty() ? -std::numeric_limits<double>::infinity() : t.score_by_rung.back();
  };
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) {
    const auto& ta = trials_[a];
    const auto& tb = trials_[b];
    if (ta.failed != tb.failed) return !ta.failed;
    if (ta.highest_rung != tb.highest_rung) return ta.highest_rung > tb.highest_rung;
    return key_score(a) > key_score(b);
  });
  return ids;
}

}  // namespace brainmri::experiments
