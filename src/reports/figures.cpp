// The figures of a run's report (confusion matrix, ROC, training curves, Grad-CAM grid, subgroups,
// reliability); a search's are in search_figures.cpp, the shared plotting helpers in plotting.cpp.
#include "brainmri/reports/figures.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>

#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/summary.hpp"
#include "plotting.hpp"

namespace brainmri::reports {
namespace fs = std::filesystem;

std::vector<double> interpolate_tpr(const std::vector<double>& fpr, const std::vector<double>& tpr,
                                    const std::vector<double>& grid) {
  std::vector<double> out(grid.size(), 0.0);
  for (std::size_t g = 0; g < grid.size(); ++g) {
    const double x = grid[g];
    // The last point at or before x (the highest rate among tied false-positive rates).
    std::size_t i = 0;
    while (i + 1 < fpr.size() && fpr[i + 1] <= x) ++i;
    if (i + 1 < fpr.size() && fpr[i + 1] > fpr[i]) {
      const double t = (x - fpr[i]) / (fpr[i + 1] - fpr[i]);
      out[g] = tpr[i] + std::clamp(t, 0.0, 1.0) * (tpr[i + 1] - tpr[i]);
    } else {
      out[g] = tpr[i];
    }
  }
  if (!out.empty() && !grid.empty() && grid.front() == 0.0) out.front() = 0.0;  // curves start at the origin
  return out;
}

#ifdef BRAINMRI_HAVE_PLPLOT
using namespace plotting;

void plot_confusion_matrix(const metrics::ConfusionMatrix& matrix, const std::vector<std::string>& class_names,
                           const std::string& title, const fs::path& stem, bool vector) {
  const int k = matrix.class_count();
  render(stem, vector, 1400, 760, [&](plstream& pls) {
    // White to dark blue for the cells.
    const PLFLT positions[2] = {0.0, 1.0}, red[2] = {1.0, 0.03}, green[2] = {1.0, 0.19}, blue[2] = {1.0, 0.42};
    pls.scmap1n(256);
    pls.scmap1l(true, 2, positions, red, green, blue, nullptr);
    pls.ssub(2, 1);
    pls.schr(0, 0.85);
    for (int panel = 0; panel < 2; ++panel) {
      const bool normalized = panel == 1;
      pls.adv(0);
      pls.vpas(0.36, 0.92, 0.34, 0.88, 1.0);
      pls.wind(0, k, k, 0);  // row 0 at the top
      for (int t = 0; t < k; ++t) {
        const double row_total = static_cast<double>(std::max<std::int64_t>(1, matrix.support(t)));
        for (int p = 0; p < k; ++p) {
          const double count = static_cast<double>(matrix.at(t, p));
          const double shade = count / row_total;
          const PLFLT xs[4] = {static_cast<PLFLT>(p), static_cast<PLFLT>(p + 1), static_cast<PLFLT>(p + 1),
                               static_cast<PLFLT>(p)};
          const PLFLT ys[4] = {static_cast<PLFLT>(t), static_cast<PLFLT>(t), static_cast<PLFLT>(t + 1),
                               static_cast<PLFLT>(t + 1)};
          pls.col1(shade);
          pls.fill(4, xs, ys);
          pls.col0(shade > 0.55 ? kBackground : kInk);
          const std::string text = normalized ? format("%.2f", shade) : std::to_string(matrix.at(t, p));
          pls.ptex(p + 0.5, t + 0.5, 1, 0, 0.5, text.c_str());
        }
      }
      pls.col0(kInk);
      pls.box("bc", 0, 0, "bc", 0, 0);
      // Class names: rows to the left; columns written downwards, so long names never collide;
      // the axis titles beyond the longest name (in character heights, ~0.95 per character).
      std::size_t longest = 0;
      for (const auto& name : class_names) longest = std::max(longest, name.size());
      const double label_room = 1.6 + 0.95 * static_cast<double>(longest);
      for (int c = 0; c < k; ++c) {
        const double centre = (c + 0.5) / k;
        pls.mtex("bv", 0.6, centre, 1.0, class_names[static_cast<std::size_t>(c)].c_str());
        pls.mtex("lv", 0.6, 1.0 - centre, 1.0, class_names[static_cast<std::size_t>(c)].c_str());
      }
      pls.mtex("b", label_room, 0.5, 0.5, "Predicted class");
      pls.mtex("l", label_room, 0.5, 0.5, "True class");
      const std::string panel_title = normalized ? "Row-normalized: recall on the diagonal"
                                                 : title + " (" + std::to_string(matrix.total()) + " images)";
      pls.mtex("t", 1.5, 0.5, 0.5, panel_title.c_str());
    }
  });
}

void plot_roc_curves(const std::vector<int>& labels, const std::vector<double>& probabilities,
                     const std::vector<std::string>& class_names, const std::string& title, const fs::path& stem,
                     bool vector) {
  const int k = static_cast<int>(class_names.size());
  const auto roc = metrics::one_vs_rest_roc(labels, probabilities, k);
  // Macro-average curve: every class's rate interpolated on the union of their false-positive rates.
  std::vector<double> grid;
  for (const auto& curve : roc.per_class)
    grid.insert(grid.end(), curve.false_positive_rate.begin(), curve.false_positive_rate.end());
  grid.erase(std::remove_if(grid.begin(), grid.end(), [](double x) { return std::isnan(x); }), grid.end());
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  std::vector<double> macro(grid.size(), 0.0);
  int defined = 0;
  for (int c = 0; c < k; ++c) {
    if (std::isnan(roc.auc_per_class[static_cast<std::size_t>(c)])) continue;
    const auto& curve = roc.per_class[static_cast<std::size_t>(c)];
    const auto tpr = interpolate_tpr(curve.false_positive_rate, curve.true_positive_rate, grid);
    for (std::size_t i = 0; i < grid.size(); ++i) macro[i] += tpr[i];
    ++defined;
  }
  for (auto& v : macro) v /= std::max(1, defined);

  render(stem, vector, 900, 820, [&](plstream& pls) {
    roc_frame(pls, title);
    std::vector<LegendEntry> legend;
    for (int c = 0; c < k; ++c) {
      const auto& curve = roc.per_class[static_cast<std::size_t>(c)];
      const double auc = roc.auc_per_class[static_cast<std::size_t>(c)];
      if (std::isnan(auc)) continue;
      pls.col0(class_colour(c));
      pls.lsty(1);
      pls.width(2.0);
      pls.line(static_cast<PLINT>(curve.false_positive_rate.size()), curve.false_positive_rate.data(),
               curve.true_positive_rate.data());
      legend.push_back(
          {class_names[static_cast<std::size_t>(c)] + format(" (AUC %.3f)", auc), class_colour(c), 1, 2.0});
    }
    pls.width(2.0);
    pls.col0(kInk);
    pls.lsty(2);
    pls.line(static_cast<PLINT>(roc.micro.false_positive_rate.size()), roc.micro.false_positive_rate.data(),
             roc.micro.true_positive_rate.data());
    legend.push_back({format("micro-average (AUC %.3f)", roc.micro_auc), kInk, 2, 2.0});
    pls.lsty(1);
    pls.col0(kDarkGrey);
    pls.width(3.0);
    pls.line(static_cast<PLINT>(grid.size()), grid.data(), macro.data());
    legend.push_back({format("macro-average (mean AUC %.3f)", roc.macro_auc), kDarkGrey, 1, 3.0});
    legend.push_back({"chance", kGrey, 2, 1.0});
    pls.lsty(1);
    draw_legend(pls, legend, PL_POSITION_RIGHT | PL_POSITION_BOTTOM | PL_POSITION_INSIDE, 0.9);
  });
}

void plot_cross_validated_roc(const std::vector<FoldPredictions>& folds, const std::vector<std::string>& class_names,
                              const std::string& title, const fs::path& stem, bool vector) {
  const int k = static_cast<int>(class_names.size());
  std::vector<double> grid(201);
  for (std::size_t i = 0; i < grid.size(); ++i) grid[i] = static_cast<double>(i) / static_cast<double>(grid.size() - 1);
  std::vector<metrics::OneVsRestRoc> rocs;
  for (const auto& f : folds) rocs.push_back(metrics::one_vs_rest_roc(f.labels, f.probabilities, k));

  render(stem, vector, 900, 820, [&](plstream& pls) {
    roc_frame(pls, title);
    std::vector<LegendEntry> legend;
    pls.lsty(1);
    for (int c = 0; c < k; ++c) {
      std::vector<std::vector<double>> rates;
      std::vector<double> aucs;
      const int faint = translucent(pls, c, 0.28, 2 * c);
      const int band = translucent(pls, c, 0.16, 2 * c + 1);
      for (const auto& roc : rocs) {
        const double auc = roc.auc_per_class[static_cast<std::size_t>(c)];
        if (std::isnan(auc)) continue;
        const auto& curve = roc.per_class[static_cast<std::size_t>(c)];
        pls.col0(faint);
        pls.width(1.0);
        pls.line(static_cast<PLINT>(curve.false_positive_rate.size()), curve.false_positive_rate.data(),
                 curve.true_positive_rate.data());
        rates.push_back(interpolate_tpr(curve.false_positive_rate, curve.true_positive_rate, grid));
        aucs.push_back(auc);
      }
      if (rates.empty()) continue;
      std::vector<double> mean(grid.size(), 0.0), low(grid.size()), high(grid.size());
      for (std::size_t i = 0; i < grid.size(); ++i) {
        for (const auto& r : rates) mean[i] += r[i] / static_cast<double>(rates.size());
        double squares = 0;
        for (const auto& r : rates) squares += (r[i] - mean[i]) * (r[i] - mean[i]);
        const double sd = rates.size() > 1 ? std::sqrt(squares / static_cast<double>(rates.size() - 1)) : 0.0;
        low[i] = std::max(0.0, mean[i] - sd);
        high[i] = std::min(1.0, mean[i] + sd);
      }
      std::vector<PLFLT> band_x(grid.begin(), grid.end()), band_y(high.begin(), high.end());
      band_x.insert(band_x.end(), grid.rbegin(), grid.rend());
      band_y.insert(band_y.end(), low.rbegin(), low.rend());
      pls.col0(band);
      pls.fill(static_cast<PLINT>(band_x.size()), band_x.data(), band_y.data());
      pls.col0(class_colour(c));
      pls.width(2.5);
      pls.line(static_cast<PLINT>(grid.size()), grid.data(), mean.data());
      const auto auc = metrics::spread(aucs);
      char text[160];
      std::snprintf(text, sizeof(text), "%s (AUC %.3f ± %.3f)", class_names[static_cast<std::size_t>(c)].c_str(),
                    auc.mean, aucs.size() > 1 ? auc.std_dev : 0.0);
      legend.push_back({text, class_colour(c), 1, 2.5});
    }
    legend.push_back({"each fold (faint); mean ± 1 std (band)", kGrey, 1, 1.0});
    legend.push_back({"chance", kGrey, 2, 1.0});
    draw_legend(pls, legend, PL_POSITION_RIGHT | PL_POSITION_BOTTOM | PL_POSITION_INSIDE, 0.85);
  });
}

namespace {
// Inferno (matplotlib's perceptual colour map), 9 control points; the overlay's opacity rises
// with the map so that low values leave the slice visible.
void set_inferno(plstream& pls, bool translucent) {
  const PLFLT position[9] = {0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0};
  const PLFLT red[9] = {0.0015, 0.0878, 0.2582, 0.4162, 0.5783, 0.7353, 0.8651, 0.9672, 0.9884};
  const PLFLT green[9] = {0.0005, 0.0441, 0.0386, 0.0907, 0.1480, 0.2155, 0.3166, 0.5160, 0.9984};
  const PLFLT blue[9] = {0.0139, 0.2243, 0.4065, 0.4329, 0.4044, 0.3306, 0.2005, 0.0624, 0.6449};
  PLFLT alpha[9];
  for (int i = 0; i < 9; ++i) alpha[i] = translucent ? std::min(0.75, 0.1 + 0.8 * position[i]) : 1.0;
  pls.scmap1n(256);
  pls.scmap1la(true, 9, position, red, green, blue, alpha, nullptr);
}

void set_grey(plstream& pls) {
  const PLFLT position[2] = {0.0, 1.0}, level[2] = {0.0, 1.0}, alpha[2] = {1.0, 1.0};
  pls.scmap1n(256);
  pls.scmap1la(true, 2, position, level, level, level, alpha, nullptr);
}

// PLplot images are indexed [x][y] with y upwards; ours are row-major with row 0 at the top.
void draw_image(plstream& pls, const std::vector<double>& values, int height, int width) {
  std::vector<std::vector<PLFLT>> columns(static_cast<std::size_t>(width),
                                          std::vector<PLFLT>(static_cast<std::size_t>(height)));
  std::vector<const PLFLT*> pointers;
  for (int x = 0; x < width; ++x) {
    for (int y = 0; y < height; ++y) {
      columns[static_cast<std::size_t>(x)][static_cast<std::size_t>(y)] =
          values[static_cast<std::size_t>((height - 1 - y) * width + x)];
    }
    pointers.push_back(columns[static_cast<std::size_t>(x)].data());
  }
  pls.image(pointers.data(), width, height, 0, width, 0, height, 0.0, 1.0, 0, width, 0, height);
}
}  // namespace

void plot_gradcam_grid(const std::vector<std::vector<std::optional<CamTile>>>& rows, int correct_columns,
                       const std::vector<std::string>& class_names, const std::string& title,
                       const std::string& map_name, const fs::path& stem, bool vector) {
  if (rows.empty() || rows.front().empty()) throw std::invalid_argument("no tiles for " + stem.string());
  const int columns = static_cast<int>(rows.front().size());
  const int tile = 220;
  const int width = 200 + columns * tile, height = 170 + static_cast<int>(rows.size()) * (tile + 44);
  render(stem, vector, width, height, [&](plstream& pls) {
    pls.adv(0);
    pls.schr(0, 0.62);
    const double left = 180.0 / width, top = 1.0 - 78.0 / height, bottom = 110.0 / height;
    const double cell_w = (1.0 - left - 20.0 / width) / columns;
    const double cell_h = (top - bottom) / static_cast<double>(rows.size());
    pls.vpor(0, 1, 0, 1);
    pls.wind(0, 1, 0, 1);
    pls.col0(kInk);
    pls.ptex(0.5, 1.0 - 22.0 / height, 1, 0, 0.5, title.c_str());
    pls.ptex(left + cell_w * correct_columns / 2.0, top + 26.0 / height, 1, 0, 0.5, "most confident correct");
    pls.ptex(left + cell_w * (correct_columns + (columns - correct_columns) / 2.0), top + 26.0 / height, 1, 0, 0.5,
             "most confident errors");
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const double y1 = top - static_cast<double>(r) * cell_h;
      pls.vpor(0, 1, 0, 1);
      pls.wind(0, 1, 0, 1);
      pls.col0(kInk);
      pls.ptex(left - 10.0 / width, y1 - cell_h / 2, 1, 0, 1.0, class_names[r].c_str());
      for (int c = 0; c < columns; ++c) {
        const auto& t = rows[r][static_cast<std::size_t>(c)];
        const double x0 = left + c * cell_w;
        pls.vpas(x0 + 0.04 * cell_w, x0 + 0.96 * cell_w, y1 - 0.86 * cell_h, y1 - 0.16 * cell_h, 1.0);
        pls.wind(0, 1, 0, 1);
        if (!t) {
          pls.col0(kGrey);
          pls.ptex(0.5, 0.5, 1, 0, 0.5, "(none)");
          continue;
        }
        pls.wind(0, t->width, 0, t->height);
        set_grey(pls);
        draw_image(pls, t->image, t->height, t->width);
        set_inferno(pls, true);
        draw_image(pls, t->map, t->height, t->width);
        pls.col0(t->truth == t->predicted ? kInk : class_colour(3));
        char truth[96], prediction[96];
        std::snprintf(truth, sizeof(truth), "T %s", class_names[static_cast<std::size_t>(t->truth)].c_str());
        std::snprintf(prediction, sizeof(prediction), "P %s %.2f",
                      class_names[static_cast<std::size_t>(t->predicted)].c_str(), t->probability);
        pls.schr(0, 0.54);  // two labels per tile must fit its width
        pls.mtex("t", 2.3, 0.5, 0.5, truth);
        pls.mtex("t", 0.8, 0.5, 0.5, prediction);
        pls.schr(0, 0.62);
      }
    }
    // The colour scale.
    pls.vpor(0.3, 0.7, 40.0 / height, 60.0 / height);
    std::vector<double> ramp(2 * 256);  // two identical rows (PLplot draws images of 2 rows and more)
    for (int i = 0; i < 256; ++i)
      ramp[static_cast<std::size_t>(i)] = ramp[static_cast<std::size_t>(256 + i)] = i / 255.0;
    pls.wind(0, 256, 0, 2);
    set_inferno(pls, false);
    draw_image(pls, ramp, 2, 256);
    pls.col0(kInk);
    pls.box("bc", 0, 0, "bc", 0, 0);
    pls.mtex("lv", 0.6, 0.5, 1.0, "0");
    pls.mtex("rv", 0.6, 0.5, 0.0, "1");
    pls.mtex("b", 1.4, 0.5, 0.5,
             (map_name + " (1 = the map's maximum); T true, P predicted class with its probability").c_str());
  });
}

namespace {

// Dotted lines where a new stage starts, with its name, in an epoch axis.
// Two panels side by side with one legend below both: a legend inside a panel hid the curves of
// short runs. Pixels: 700 high, the panels from 34% to 90% of it, the legend under the x labels.
constexpr int kTwoPanelHeight = 700;
void left_panel(plstream& pls) { pls.vpor(0.11, 0.47, 0.34, 0.9); }
void right_panel(plstream& pls) { pls.vpor(0.61, 0.97, 0.34, 0.9); }
void legend_below_panels(plstream& pls, const std::vector<LegendEntry>& entries, int columns) {
  pls.vpor(0.11, 0.97, 0.34, 0.9);
  pls.wind(0, 1, 0, 1);
  draw_legend(pls, entries, PL_POSITION_BOTTOM | PL_POSITION_OUTSIDE, 0.62, columns, 0.25, 0.04);
}

void stage_marks(plstream& pls, const std::vector<evaluation::EpochRecord>& epochs, double ymin, double ymax) {
  for (std::size_t i = 1; i < epochs.size(); ++i) {
    if (epochs[i].stage == epochs[i - 1].stage) continue;
    const PLFLT sx[2] = {i + 0.5, i + 0.5}, sy[2] = {ymin, ymax};
    pls.col0(kGrey);
    pls.lsty(3);
    pls.line(2, sx, sy);
    pls.lsty(1);
    pls.ptex(i + 0.6, ymax - 0.04 * (ymax - ymin), 1, 0, 0, epochs[i].stage.c_str());
  }
}

std::vector<double> epoch_column(const std::vector<evaluation::EpochRecord>& epochs,
                                 double evaluation::EpochRecord::*field) {
  std::vector<double> v;
  for (const auto& e : epochs) v.push_back(e.*field);
  return v;
}

}  // namespace

void plot_fold_training_curves(const std::vector<std::pair<std::string, std::vector<evaluation::EpochRecord>>>& folds,
                               const std::string& title, const fs::path& stem, bool vector) {
  std::size_t longest = 0;
  double top_loss = 0;
  for (const auto& [name, epochs] : folds) {
    longest = std::max(longest, epochs.size());
    for (const auto& e : epochs) top_loss = std::max({top_loss, e.train_loss, e.val_loss});
  }
  if (longest == 0) throw std::invalid_argument("no epochs to plot in " + stem.string());
  const auto& longest_run = std::max_element(folds.begin(), folds.end(), [](const auto& a, const auto& b) {
                              return a.second.size() < b.second.size();
                            })->second;
  render(stem, vector, 1400, kTwoPanelHeight, [&](plstream& pls) {
    const double right = static_cast<double>(longest) + 0.5;
    std::vector<LegendEntry> legend;
    auto draw = [&](const std::vector<evaluation::EpochRecord>& epochs, double evaluation::EpochRecord::*field,
                    int colour, int style) {
      std::vector<double> x(epochs.size());
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
      const auto y = epoch_column(epochs, field);
      pls.col0(colour);
      pls.lsty(style);
      pls.width(1.6);
      pls.line(static_cast<PLINT>(x.size()), x.data(), y.data());
      if (x.size() == 1) pls.poin(1, x.data(), y.data(), 17);  // a one-epoch run is a point
      pls.lsty(1);
    };
    pls.adv(0);
    // Loss.
    left_panel(pls);
    const double loss_top = top_loss * 1.08 + 1e-9;
    axes(pls, 0.5, right, 0, loss_top, "Epoch", "Cross-entropy", title + ": loss");
    stage_marks(pls, longest_run, 0, loss_top);
    for (std::size_t f = 0; f < folds.size(); ++f) {
      const int colour = class_colour(static_cast<int>(f));
      draw(folds[f].second, &evaluation::EpochRecord::train_loss, colour, 2);
      draw(folds[f].second, &evaluation::EpochRecord::val_loss, colour, 1);
      legend.push_back({folds[f].first, colour, 1, 2.0});
    }
    legend.push_back({"validation loss, macro-F1", kInk, 1, 1.0});
    legend.push_back({"training loss", kInk, 2, 1.0});
    legend.push_back({"validation accuracy", kInk, 3, 1.0});
    // Validation macro-F1 and accuracy.
    right_panel(pls);
    axes(pls, 0.5, right, 0, 1.02, "Epoch", "Validation macro-F1 / accuracy", title + ": validation");
    stage_marks(pls, longest_run, 0, 1.02);
    for (std::size_t f = 0; f < folds.size(); ++f) {
      const int colour = class_colour(static_cast<int>(f));
      draw(folds[f].second, &evaluation::EpochRecord::val_macro_f1, colour, 1);
      draw(folds[f].second, &evaluation::EpochRecord::val_accuracy, colour, 3);
    }
    legend_below_panels(pls, legend, 3);
  });
}

void plot_training_curves(const std::vector<evaluation::EpochRecord>& epochs, const std::string& title,
                          const fs::path& stem, bool vector) {
  if (epochs.empty()) throw std::invalid_argument("no epochs to plot in " + stem.string());
  std::vector<double> x(epochs.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
  auto column = [&](double evaluation::EpochRecord::*field) { return epoch_column(epochs, field); };
  render(stem, vector, 1400, kTwoPanelHeight, [&](plstream& pls) {
    const auto n = static_cast<PLINT>(x.size());
    const double right = static_cast<double>(x.size()) + 0.5;
    pls.adv(0);
    // Loss.
    left_panel(pls);
    const auto train_loss = column(&evaluation::EpochRecord::train_loss),
               val_loss = column(&evaluation::EpochRecord::val_loss);
    double top = 0;
    for (std::size_t i = 0; i < x.size(); ++i) top = std::max({top, train_loss[i], val_loss[i]});
    axes(pls, 0.5, right, 0, top * 1.08 + 1e-9, "Epoch", "Cross-entropy", title + ": loss");
    stage_marks(pls, epochs, 0, top * 1.08 + 1e-9);
    pls.width(2.0);
    pls.col0(class_colour(0));
    pls.line(n, x.data(), train_loss.data());
    pls.col0(class_colour(1));
    pls.line(n, x.data(), val_loss.data());
    // Accuracy and macro-F1.
    right_panel(pls);
    const auto train_accuracy = column(&evaluation::EpochRecord::train_accuracy),
               val_accuracy = column(&evaluation::EpochRecord::val_accuracy),
               val_f1 = column(&evaluation::EpochRecord::val_macro_f1);
    axes(pls, 0.5, right, 0, 1.02, "Epoch", "Accuracy / macro-F1", title + ": accuracy");
    stage_marks(pls, epochs, 0, 1.02);
    pls.width(2.0);
    pls.col0(class_colour(0));
    pls.line(n, x.data(), train_accuracy.data());
    pls.col0(class_colour(1));
    pls.line(n, x.data(), val_accuracy.data());
    pls.col0(class_colour(2));
    pls.lsty(2);
    pls.line(n, x.data(), val_f1.data());
    pls.lsty(1);
    legend_below_panels(pls,
                        {{"training (loss, accuracy)", class_colour(0), 1, 2.0},
                         {"validation (loss, accuracy)", class_colour(1), 1, 2.0},
                         {"validation macro-F1", class_colour(2), 2, 2.0}},
                        3);
  });
}

void plot_subgroup_accuracy(const std::vector<SubgroupAccuracy>& subgroups, double overall_accuracy, int min_images,
                            const std::string& title, const fs::path& stem, bool vector) {
  if (subgroups.empty()) throw std::invalid_argument("no subgroups to plot in " + stem.string());
  // Rows top to bottom: a heading for each property, then its subgroups.
  struct Row {
    const SubgroupAccuracy* subgroup;  // nullptr: a property heading
    std::string text;
  };
  std::vector<Row> rows;
  int property_index = -1;
  std::vector<int> property_of_row;
  for (std::size_t i = 0; i < subgroups.size(); ++i) {
    const auto& g = subgroups[i];
    if (i == 0 || g.property != subgroups[i - 1].property) {
      rows.push_back({nullptr, g.property});
      property_of_row.push_back(++property_index);
    }
    rows.push_back({&g, g.value + " (" + std::to_string(g.images) + ")"});
    property_of_row.push_back(property_index);
  }
  double lowest = overall_accuracy;
  for (const auto& g : subgroups) lowest = std::min(lowest, std::isnan(g.low) ? g.accuracy : g.low);
  const double x_min = std::max(0.0, std::floor((lowest - 0.02) * 10) / 10);
  const auto n = static_cast<double>(rows.size());
  // Pixels: 120 below the frame (ticks, the axis label and the key), 60 above it, 26 a row.
  const int height = 180 + 26 * static_cast<int>(rows.size());
  render(stem, vector, 1100, height, [&](plstream& pls) {
    pls.adv(0);
    pls.vpor(0.36, 0.96, 120.0 / height, 1 - 60.0 / height);
    // The first row at the top; a margin beyond [x_min, 1] keeps points at the limits whole.
    const double margin = 0.015 * (1.0 - x_min);
    pls.wind(x_min - margin, 1.0 + margin, n, 0);
    pls.col0(kInk);
    pls.box("bcnst", 0, 0, "bc", 0, 0);
    // The key on a line of its own: beside "Accuracy" it ran past the right edge of the page.
    pls.lab("Accuracy", "", title.c_str());
    pls.schr(0, 0.85);
    pls.mtex("b", 5.6, 0.5, 0.5, "bar: Wilson 95% interval; dashed line: all images");
    const PLFLT overall_x[2] = {overall_accuracy, overall_accuracy}, overall_y[2] = {0, n};
    pls.lsty(2);
    pls.line(2, overall_x, overall_y);
    pls.lsty(1);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const double y = static_cast<double>(r) + 0.5, label_position = 1.0 - y / n;
      if (!rows[r].subgroup) {
        pls.col0(kInk);
        pls.mtex("lv", 17.0, label_position, 0.0, (rows[r].text + ":").c_str());
        continue;
      }
      const auto& g = *rows[r].subgroup;
      const bool comparable = g.images >= min_images;
      const int colour = comparable ? class_colour(property_of_row[r]) : kGrey;
      pls.col0(comparable ? kInk : kGrey);
      pls.mtex("lv", 1.0, label_position, 1.0, rows[r].text.c_str());
      pls.col0(colour);
      if (!std::isnan(g.low)) {
        const PLFLT bar_x[2] = {g.low, g.high}, bar_y[2] = {y, y};
        pls.width(2.0);
        pls.line(2, bar_x, bar_y);
        pls.width(1.0);
      }
      const PLFLT point_x[1] = {g.accuracy}, point_y[1] = {y};
      pls.poin(1, point_x, point_y, 17);
    }
    pls.schr(0, 1.05);
  });
}

void plot_reliability_diagrams(const std::vector<ReliabilityPanel>& panels, const fs::path& stem, bool vector) {
  if (panels.empty()) throw std::invalid_argument("no reliability panels to plot in " + stem.string());
  const int columns = std::min<int>(3, static_cast<int>(panels.size()));
  const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
  render(stem, vector, 460 * columns, 520 * rows + 40, [&](plstream& pls) {
    pls.ssub(columns, rows);
    pls.schr(0, 0.95);
    const int shade = translucent(pls, 3, 0.35, 0);  // the gaps, in a light red
    for (std::size_t p = 0; p < panels.size(); ++p) {
      const auto& panel = panels[p];
      const auto& bins = panel.reliability.bins;
      pls.adv(0);
      // The diagram above, the counts below.
      // Margins beyond [0, 1] keep the points at 0 and 1 whole.
      constexpr double kMargin = 0.02;
      pls.vpor(0.21, 0.95, 0.36, 0.9);
      pls.wind(-kMargin, 1 + kMargin, -kMargin, 1 + kMargin);
      pls.col0(kInk);
      pls.width(1.0);
      pls.box("bcst", 0, 0, "bcnstv", 0, 0);
      pls.lab("", "Observed frequency",
              (panel.title +
               (std::isnan(panel.reliability.ece) ? std::string() : ": ECE " + format("%.3f", panel.reliability.ece)))
                  .c_str());
      const PLFLT diagonal_x[2] = {0, 1}, diagonal_y[2] = {0, 1};
      pls.col0(kGrey);
      pls.lsty(2);
      pls.line(2, diagonal_x, diagonal_y);
      pls.lsty(1);
      std::vector<PLFLT> x, y;
      for (const auto& b : bins) {
        // The gap between the bin's frequency and its mean confidence, over the bin's width.
        const PLFLT gx[4] = {b.lower, b.upper, b.upper, b.lower};
        const PLFLT gy[4] = {b.mean_score, b.mean_score, b.frequency, b.frequency};
        pls.col0(shade);
        pls.fill(4, gx, gy);
        x.push_back(b.mean_score);
        y.push_back(b.frequency);
      }
      pls.col0(class_colour(0));
      pls.width(2.0);
      if (x.size() > 1) pls.line(static_cast<PLINT>(x.size()), x.data(), y.data());
      pls.ssym(0, 1.2);
      if (!x.empty()) pls.poin(static_cast<PLINT>(x.size()), x.data(), y.data(), 17);
      pls.width(1.0);
      // Counts: bars over each bin's width, on a log-free linear scale up to the largest.
      int most = 1;
      for (const auto& b : bins) most = std::max(most, b.count);
      pls.vpor(0.21, 0.95, 0.12, 0.3);
      pls.wind(-kMargin, 1 + kMargin, 0, most * 1.1);
      pls.col0(kInk);
      pls.box("bcnst", 0, 0, "bcstv", 0, 0);
      pls.lab("Mean confidence", "", "");
      pls.mtex("l", 2.0, 0.5, 0.5, "images");
      for (const auto& b : bins) {
        const PLFLT bx[4] = {b.lower, b.upper, b.upper, b.lower};
        const PLFLT by[4] = {0, 0, static_cast<double>(b.count), static_cast<double>(b.count)};
        pls.col0(kGrey);
        pls.fill(4, bx, by);
      }
      // The scale once, above the bars on the right (beside the top of the axis it read as the
      // count of whichever bar stood there).
      pls.col0(kInk);
      pls.schr(0, 0.8);
      pls.mtex("t", 1.0, 1.0, 1.0, ("tallest bar: " + std::to_string(most) + " images").c_str());
      pls.schr(0, 0.95);
    }
  });
}

#else  // built without PLplot: the report has tables and text, no figures
using plotting::no_plots;

void plot_confusion_matrix(const metrics::ConfusionMatrix&, const std::vector<std::string>&, const std::string&,
                           const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_roc_curves(const std::vector<int>&, const std::vector<double>&, const std::vector<std::string>&,
                     const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_cross_validated_roc(const std::vector<FoldPredictions>&, const std::vector<std::string>&, const std::string&,
                              const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_training_curves(const std::vector<evaluation::EpochRecord>&, const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_fold_training_curves(const std::vector<std::pair<std::string, std::vector<evaluation::EpochRecord>>>&,
                               const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}
void plot_reliability_diagrams(const std::vector<ReliabilityPanel>&, const fs::path& stem, bool) { no_plots(stem); }
void plot_subgroup_accuracy(const std::vector<SubgroupAccuracy>&, double, int, const std::string&, const fs::path& stem,
                            bool) {
  no_plots(stem);
}
void plot_gradcam_grid(const std::vector<std::vector<std::optional<CamTile>>>&, int, const std::vector<std::string>&,
                       const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}

#endif

}  // namespace brainmri::reports
