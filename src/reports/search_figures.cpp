// A hyperparameter search's figures (brainmri tune's report): history, parallel coordinates,
// successive-halving rungs and parameter importance.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "brainmri/reports/figures.hpp"
#include "plotting.hpp"

namespace brainmri::reports {
namespace fs = std::filesystem;

#ifdef BRAINMRI_HAVE_PLPLOT
using namespace plotting;

namespace {

// Viridis (matplotlib's perceptual colour map, readable in grey), 5 control points, in colour map 1.
void set_viridis(plstream& pls) {
  const PLFLT position[5] = {0.0, 0.25, 0.5, 0.75, 1.0};
  const PLFLT red[5] = {0.267, 0.229, 0.128, 0.369, 0.993};
  const PLFLT green[5] = {0.005, 0.322, 0.567, 0.789, 0.906};
  const PLFLT blue[5] = {0.329, 0.546, 0.551, 0.383, 0.144};
  pls.scmap1n(256);
  pls.scmap1l(true, 5, position, red, green, blue, nullptr);
}

// The lowest and highest of `values` (NaNs skipped), widened by `margin` of the span.
std::pair<double, double> padded_range(const std::vector<double>& values, double margin) {
  double low = INFINITY, high = -INFINITY;
  for (const double v : values) {
    if (std::isnan(v)) continue;
    low = std::min(low, v);
    high = std::max(high, v);
  }
  if (!std::isfinite(low)) return {0, 1};
  const double span = high > low ? high - low : std::max(std::abs(high), 1.0) * 0.1;
  return {low - margin * span, high + margin * span};
}

std::string rung_name(std::size_t rung, const std::vector<int>& rung_epochs) {
  const int epochs = rung < rung_epochs.size() ? rung_epochs[rung] : 0;
  return "rung " + std::to_string(rung) + " (" + std::to_string(epochs) + (epochs == 1 ? " epoch)" : " epochs)");
}

// "0.000316", "64", "1.2e+03": short labels for axis ends.
std::string short_number(double value) { return format("%.3g", value); }

}  // namespace

void plot_search_history(const std::vector<SearchTrialPoint>& trials, const std::vector<int>& rung_epochs,
                         const std::string& objective, const std::string& title, const fs::path& stem, bool vector) {
  std::vector<double> scores;
  double last_number = 0;
  for (const auto& t : trials) {
    if (t.score_by_rung.empty()) continue;
    scores.push_back(t.score_by_rung.back());
    last_number = std::max(last_number, static_cast<double>(t.number));
  }
  if (scores.empty()) throw std::invalid_argument("no trial has a score to plot in " + stem.string());
  const auto [low, high] = padded_range(scores, 0.08);
  const std::size_t rungs = std::max<std::size_t>(rung_epochs.size(), 1);
  render(stem, vector, 1200, 760, [&](plstream& pls) {
    pls.adv(0);
    pls.vpor(0.11, 0.97, 0.33, 0.92);  // the legend goes below, hiding no point
    axes(pls, -0.5, last_number + 0.5, low, high, "Trial (the order trials started)", objective.c_str(), title);
    std::vector<LegendEntry> legend;
    pls.ssym(0, 1.4);
    for (std::size_t r = 0; r < rungs; ++r) {
      std::vector<PLFLT> x, y;
      for (const auto& t : trials) {
        if (t.score_by_rung.size() != r + 1) continue;
        x.push_back(t.number);
        y.push_back(t.score_by_rung.back());
      }
      const int colour = r + 1 == rungs ? class_colour(0) : class_colour(static_cast<int>(r) + 1);
      pls.col0(colour);
      if (!x.empty()) pls.poin(static_cast<PLINT>(x.size()), x.data(), y.data(), 17);
      legend.push_back({(r + 1 == rungs ? (rungs > 1 ? "completed, " : "") : "stopped after ") +
                            rung_name(r, rung_epochs) + ": " + std::to_string(x.size()),
                        colour, 1, 3.0});
    }
    // The running best of the completed trials: a step at each improvement.
    std::vector<PLFLT> step_x, step_y;
    double best = NAN;
    int best_trial = -1;
    for (const auto& t : trials) {
      if (t.score_by_rung.size() != rungs) continue;
      const double s = t.score_by_rung.back();
      if (!std::isnan(best) && s <= best) continue;
      if (!std::isnan(best)) {
        step_x.push_back(t.number);
        step_y.push_back(best);
      }
      step_x.push_back(t.number);
      step_y.push_back(s);
      best = s;
      best_trial = t.number;
    }
    if (!step_x.empty()) {
      step_x.push_back(last_number + 0.5);
      step_y.push_back(best);
      pls.col0(kInk);
      pls.width(1.5);
      pls.line(static_cast<PLINT>(step_x.size()), step_x.data(), step_y.data());
      pls.width(1.0);
      // Beside the best trial's point, on the side with room, and under the step where the step
      // runs close to the top of the frame.
      pls.schr(0, 0.8);
      const bool right_of_point = best_trial < 0.7 * last_number;
      const double label_y = best + (best > high - 0.1 * (high - low) ? -0.05 : 0.02) * (high - low);
      text_with_halo(pls, best_trial + (right_of_point ? 0.4 : -0.4), label_y, right_of_point ? 0.0 : 1.0,
                     "best: trial " + std::to_string(best_trial), kInk);
      pls.schr(0, 1.05);
      legend.push_back({"best so far (completed trials)", kInk, 1, 1.5});
    }
    draw_legend(pls, legend, PL_POSITION_BOTTOM | PL_POSITION_OUTSIDE, 0.8, 2, 0.24);
  });
}

void plot_parallel_coordinates(const std::vector<SearchAxis>& axes_of_search,
                               const std::vector<SearchTrialPoint>& trials, int rungs, const std::string& objective,
                               const std::string& title, const fs::path& stem, bool vector) {
  const std::size_t k = axes_of_search.size();
  // Each axis mapped onto [0, 1]: numbers over their observed range (log10 for a loguniform),
  // categories evenly in the search's order; the objective last.
  std::vector<std::pair<double, double>> ranges(k + 1);
  for (std::size_t a = 0; a < k; ++a) {
    if (!axes_of_search[a].categories.empty()) {
      ranges[a] = {0, std::max<double>(1, static_cast<double>(axes_of_search[a].categories.size()) - 1)};
      continue;
    }
    std::vector<double> values;
    for (const auto& t : trials)
      values.push_back(axes_of_search[a].log_scale ? std::log10(t.values.at(a)) : t.values.at(a));
    ranges[a] = padded_range(values, 0.0);
  }
  std::vector<double> scores;
  for (const auto& t : trials) scores.push_back(t.score_by_rung.empty() ? NAN : t.score_by_rung.back());
  ranges[k] = padded_range(scores, 0.0);
  auto position = [&](std::size_t a, double v) {
    if (a < k && axes_of_search[a].log_scale) v = std::log10(v);
    const auto [low, high] = ranges[a];
    return high > low ? (v - low) / (high - low) : 0.5;
  };
  // Completed trials over the others, the best last (on top).
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    if (!trials[i].score_by_rung.empty()) order.push_back(i);
  }
  if (order.empty()) throw std::invalid_argument("no trial has a score to plot in " + stem.string());
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const bool ca = static_cast<int>(trials[a].score_by_rung.size()) == rungs;
    const bool cb = static_cast<int>(trials[b].score_by_rung.size()) == rungs;
    if (ca != cb) return !ca;
    return trials[a].score_by_rung.back() < trials[b].score_by_rung.back();
  });
  render(stem, vector, 1400, 700, [&](plstream& pls) {
    set_viridis(pls);
    pls.adv(0);
    pls.vpor(0.03, 0.86, 0.04, 0.88);
    pls.wind(-0.5, static_cast<double>(k) + 0.5, -0.24, 1.06);  // room for the labels (text outside is clipped)
    pls.col0(kInk);
    pls.mtex("t", 2.0, 0.5, 0.5, title.c_str());
    for (const std::size_t i : order) {
      const auto& t = trials[i];
      std::vector<PLFLT> x(k + 1), y(k + 1);
      for (std::size_t a = 0; a < k; ++a) {
        x[a] = static_cast<double>(a);
        y[a] = position(a, t.values.at(a));
      }
      x[k] = static_cast<double>(k);
      y[k] = position(k, t.score_by_rung.back());
      const bool completed = static_cast<int>(t.score_by_rung.size()) == rungs;
      pls.col1(y[k]);
      pls.width(completed ? 3.0 : 1.0);
      pls.line(static_cast<PLINT>(x.size()), x.data(), y.data());
    }
    // The axes, their names below and their ends' values.
    pls.width(1.0);
    pls.schr(0, 0.75);
    for (std::size_t a = 0; a <= k; ++a) {
      const double x = static_cast<double>(a);
      const PLFLT ax[2] = {x, x}, ay[2] = {0, 1};
      pls.col0(kInk);
      pls.line(2, ax, ay);
      const std::string name =
          a < k ? axes_of_search[a].name + (axes_of_search[a].log_scale ? " (log)" : "") : objective;
      pls.schr(0, 0.85);
      pls.ptex(x, a % 2 == 0 ? -0.14 : -0.21, 0, 0, 0.5, name.c_str());  // staggered: long names do not meet
      pls.schr(0, 0.75);
      if (a < k && !axes_of_search[a].categories.empty()) {
        const auto& categories = axes_of_search[a].categories;
        for (std::size_t c = 0; c < categories.size(); ++c) {
          text_with_halo(pls, x + 0.03, position(a, static_cast<double>(c)), 0, categories[c], kInk);
        }
      } else {
        const auto [low, high] = ranges[a];
        const bool log_axis = a < k && axes_of_search[a].log_scale;
        pls.ptex(x, -0.07, 0, 0, 0.5, short_number(log_axis ? std::pow(10, low) : low).c_str());
        pls.ptex(x, 1.02, 0, 0, 0.5, short_number(log_axis ? std::pow(10, high) : high).c_str());
      }
    }
    // The colour bar of the objective.
    pls.vpor(0.9, 0.92, 0.2, 0.88);
    pls.wind(0, 1, ranges[k].first, ranges[k].second);
    constexpr int kSteps = 64;
    for (int s = 0; s < kSteps; ++s) {
      const double from = ranges[k].first + (ranges[k].second - ranges[k].first) * s / kSteps;
      const double to = ranges[k].first + (ranges[k].second - ranges[k].first) * (s + 1) / kSteps;
      const PLFLT bx[4] = {0, 1, 1, 0}, by[4] = {from, from, to, to};
      pls.col1((s + 0.5) / kSteps);
      pls.fill(4, bx, by);
    }
    pls.col0(kInk);
    pls.box("bc", 0, 0, "bcmstv", 0, 0);
    pls.mtex("r", 4.5, 0.5, 0.5, (objective + " at its last rung").c_str());
    pls.schr(0, 1.05);
  });
}

void plot_search_rungs(const std::vector<SearchTrialPoint>& trials, const std::vector<int>& rung_epochs,
                       const std::string& objective, const std::string& title, const fs::path& stem, bool vector) {
  const std::size_t rungs = rung_epochs.size();
  if (rungs < 2) throw std::invalid_argument("a search of one rung has no rungs to plot in " + stem.string());
  std::vector<double> scores;
  std::vector<std::size_t> reached(rungs, 0);
  for (const auto& t : trials) {
    scores.insert(scores.end(), t.score_by_rung.begin(), t.score_by_rung.end());
    for (std::size_t r = 0; r < t.score_by_rung.size() && r < rungs; ++r) ++reached[r];
  }
  if (scores.empty()) throw std::invalid_argument("no trial has a score to plot in " + stem.string());
  const auto [low, high] = padded_range(scores, 0.06);
  render(stem, vector, 1100, 700, [&](plstream& pls) {
    pls.adv(0);
    pls.vpor(0.1, 0.96, 0.14, 0.9);
    pls.wind(-0.2, static_cast<double>(rungs) - 0.8, low, high);
    pls.col0(kInk);
    pls.box("bc", 0, 0, "bcnstv", 0, 0);
    pls.lab("", objective.c_str(), title.c_str());
    for (std::size_t r = 0; r < rungs; ++r) {
      const double at = (static_cast<double>(r) + 0.2) / (static_cast<double>(rungs) - 1 + 0.4);
      pls.mtex("b", 1.5, at, 0.5, rung_name(r, rung_epochs).c_str());
      pls.mtex("b", 2.8, at, 0.5, (std::to_string(reached[r]) + " trials").c_str());
    }
    const int grey = translucent(pls, 7, 0.45, 0);
    for (const bool completed : {false, true}) {  // the completed ones on top
      for (const auto& t : trials) {
        if (t.score_by_rung.empty() || (t.score_by_rung.size() == rungs) != completed) continue;
        std::vector<PLFLT> x, y;
        for (std::size_t r = 0; r < t.score_by_rung.size(); ++r) {
          x.push_back(static_cast<double>(r));
          y.push_back(t.score_by_rung[r]);
        }
        pls.col0(completed ? class_colour(0) : grey);
        pls.width(completed ? 2.0 : 1.0);
        if (x.size() > 1) pls.line(static_cast<PLINT>(x.size()), x.data(), y.data());
        pls.poin(static_cast<PLINT>(x.size()), x.data(), y.data(), completed ? 17 : 5);
      }
    }
    pls.width(1.0);
    draw_legend(pls,
                {{"reached the last rung", class_colour(0), 1, 2.0}, {"stopped (cross: its last rung)", kGrey, 1, 1.0}},
                PL_POSITION_RIGHT | PL_POSITION_BOTTOM | PL_POSITION_INSIDE, 0.8);
  });
}

void plot_parameter_importance(const std::vector<ParameterImportance>& importance, const std::string& title,
                               const fs::path& stem, bool vector) {
  if (importance.empty()) throw std::invalid_argument("no parameters to plot in " + stem.string());
  auto ordered = importance;
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    const double ma = std::isnan(a.value) ? -1 : std::abs(a.value), mb = std::isnan(b.value) ? -1 : std::abs(b.value);
    return ma > mb;
  });
  const auto n = static_cast<double>(ordered.size());
  render(stem, vector, 1100, 160 + 70 * static_cast<int>(ordered.size()), [&](plstream& pls) {
    pls.adv(0);
    pls.vpor(0.22, 0.95, 0.14, 0.86);
    pls.wind(0, 1.08, n, 0);  // the first (largest) bar at the top
    pls.col0(kInk);
    pls.box("bcnst", 0, 0, "bc", 0, 0);
    pls.lab("|Spearman ρ| (numeric) or η (categorical), objective at rung 0", "", title.c_str());
    for (std::size_t i = 0; i < ordered.size(); ++i) {
      const auto& p = ordered[i];
      const double top = static_cast<double>(i) + 0.2, bottom = static_cast<double>(i) + 0.8;
      pls.col0(kInk);
      pls.mtex("lv", 1.0, 1.0 - (static_cast<double>(i) + 0.5) / n, 1.0, p.name.c_str());
      if (std::isnan(p.value)) {
        pls.ptex(0.01, static_cast<double>(i) + 0.5, 1, 0, 0, "not measurable (constant or too few trials)");
        continue;
      }
      const double length = std::abs(p.value);
      const int colour = p.measure == "eta" ? class_colour(2) : p.value >= 0 ? class_colour(0) : class_colour(3);
      const PLFLT bx[4] = {0, length, length, 0}, by[4] = {top, top, bottom, bottom};
      pls.col0(colour);
      pls.fill(4, bx, by);
      pls.col0(kInk);
      const std::string label =
          (p.measure == "eta" ? "η = " + format("%.2f", p.value) : "ρ = " + format("%+.2f", p.value)) + " (" +
          std::to_string(p.trials) + " trials)";
      pls.schr(0, 0.8);
      pls.ptex(length + 0.01, static_cast<double>(i) + 0.5, 1, 0, 0, label.c_str());
      pls.schr(0, 1.05);
    }
  });
}

#else

using plotting::no_plots;

void plot_search_history(const std::vector<SearchTrialPoint>&, const std::vector<int>&, const std::string&,
                         const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_parallel_coordinates(const std::vector<SearchAxis>&, const std::vector<SearchTrialPoint>&, int,
                               const std::string&, const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_search_rungs(const std::vector<SearchTrialPoint>&, const std::vector<int>&, const std::string&,
                       const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_parameter_importance(const std::vector<ParameterImportance>&, const std::string&, const fs::path& stem,
                               bool) {
  no_plots(stem);
}

#endif

}  // namespace brainmri::reports
