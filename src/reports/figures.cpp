#include "brainmri/reports/figures.hpp"

#ifdef BRAINMRI_HAVE_PLPLOT
#include <plplot/plstream.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/metrics/roc.hpp"
#include "brainmri/metrics/summary.hpp"

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
namespace {

// Colour map 0: background, ink, a light grey, then the class colours (Tableau 10, readable in
// print and by most colour-blind readers); the rest are alpha variants made per figure.
constexpr int kBackground = 0, kInk = 1, kGrey = 2, kDarkGrey = 63, kFirstClass = 3;
constexpr std::array<std::array<int, 3>, 10> kClassColours = {{{31, 119, 180},
                                                               {255, 127, 14},
                                                               {44, 160, 44},
                                                               {214, 39, 40},
                                                               {148, 103, 189},
                                                               {140, 86, 75},
                                                               {227, 119, 194},
                                                               {127, 127, 127},
                                                               {188, 189, 34},
                                                               {23, 190, 207}}};
constexpr int kPaletteSize = 64;

const std::array<std::pair<const char*, const char*>, 3> kFormats = {
    {{"pngcairo", "png"}, {"svgcairo", "svg"}, {"pdfcairo", "pdf"}}};

void set_palette(plstream& pls) {
  std::array<PLINT, kPaletteSize> r{}, g{}, b{};
  std::array<PLFLT, kPaletteSize> a{};
  a.fill(1.0);
  r[kBackground] = g[kBackground] = b[kBackground] = 255;
  r[kGrey] = g[kGrey] = b[kGrey] = 150;
  r[kDarkGrey] = g[kDarkGrey] = b[kDarkGrey] = 85;
  for (std::size_t i = 0; i < kClassColours.size(); ++i) {
    r[kFirstClass + i] = kClassColours[i][0];
    g[kFirstClass + i] = kClassColours[i][1];
    b[kFirstClass + i] = kClassColours[i][2];
  }
  pls.scmap0a(r.data(), g.data(), b.data(), a.data(), kPaletteSize);
}

int class_colour(int c) { return kFirstClass + c % static_cast<int>(kClassColours.size()); }

// A translucent copy of a class colour in a free palette slot.
int translucent(plstream& pls, int c, double alpha, int slot) {
  const auto& rgb = kClassColours[static_cast<std::size_t>(c) % kClassColours.size()];
  const int index = kFirstClass + static_cast<int>(kClassColours.size()) + slot;
  pls.scol0a(index, rgb[0], rgb[1], rgb[2], alpha);
  return index;
}

// Draws the same figure with each Cairo driver.
void render(const fs::path& stem, bool vector, int width, int height, const std::function<void(plstream&)>& draw) {
  std::string why;
  if (!plotting_available(&why)) throw std::runtime_error("cannot draw " + stem.string() + ": " + why);
  fs::create_directories(stem.parent_path());
  for (const auto& [device, extension] : kFormats) {
    if (!vector && std::string(extension) != "png") continue;
    const fs::path target = stem.string() + "." + extension;
    replace_file_atomically(target, [&](const fs::path& temporary) {
      plstream pls;
      pls.sdev(device);
      pls.sfnam(temporary.c_str());
      pls.spage(0, 0, width, height, 0, 0);
      set_palette(pls);
      pls.init();
      pls.font(1);
      pls.schr(0, 1.05);
      pls.col0(kInk);
      draw(pls);
    });  // the stream's destructor ends the file
  }
}

struct LegendEntry {
  std::string text;
  int colour;
  int style;  // PLplot line style (1 solid, 2 dashed, 3 dotted...)
  double width;
};

// `columns` > 0 lays the entries out in that many columns; `y_offset`: from the anchoring edge, as
// a fraction of the viewport (below an x axis' labels for a legend outside at the bottom).
void draw_legend(plstream& pls, const std::vector<LegendEntry>& entries, PLINT position, double text_scale,
                 int columns = 0, double y_offset = 0.02) {
  const auto n = static_cast<PLINT>(entries.size());
  std::vector<PLINT> options(entries.size(), PL_LEGEND_LINE), colours, styles;
  std::vector<PLFLT> widths;
  std::vector<const char*> texts;
  for (const auto& e : entries) {
    colours.push_back(e.colour);
    styles.push_back(e.style);
    widths.push_back(e.width);
    texts.push_back(e.text.c_str());
  }
  std::vector<PLINT> text_colours(entries.size(), kInk);
  PLFLT legend_width = 0, legend_height = 0;
  const PLINT rows = columns > 0 ? (n + columns - 1) / columns : 0;
  pls.legend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, position, 0.02, y_offset,
             0.08, kBackground, kInk, 1, rows, columns, n, options.data(), 1.0, text_scale, 2.0, 0.0,
             text_colours.data(), texts.data(), nullptr, nullptr, nullptr, nullptr, colours.data(), styles.data(),
             widths.data(), nullptr, nullptr, nullptr, nullptr);
}

void axes(plstream& pls, double xmin, double xmax, double ymin, double ymax, const char* xlabel, const char* ylabel,
          const std::string& title) {
  pls.col0(kInk);
  pls.width(1.0);
  pls.wind(xmin, xmax, ymin, ymax);
  pls.box("bcnst", 0, 0, "bcnstv", 0, 0);
  pls.lab(xlabel, ylabel, title.c_str());
}

// A square ROC panel: axes from 0 to 1, labels, and the chance diagonal.
void roc_frame(plstream& pls, const std::string& title) {
  pls.adv(0);
  pls.vpas(0.12, 0.95, 0.1, 0.92, 1.0);
  axes(pls, 0, 1, 0, 1, "False positive rate", "True positive rate", title);
  const PLFLT diagonal_x[2] = {0, 1}, diagonal_y[2] = {0, 1};
  pls.col0(kGrey);
  pls.lsty(2);
  pls.line(2, diagonal_x, diagonal_y);
  pls.lsty(1);
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof(text), pattern, value);
  return text;
}

}  // namespace

bool plotting_available(std::string* why) {
  const char** menus = nullptr;
  const char** names = nullptr;
  int count = 64;
  std::vector<const char*> menu_storage(64), name_storage(64);
  menus = menu_storage.data();
  names = name_storage.data();
  plgDevs(&menus, &names, &count);
  for (const auto& [device, extension] : kFormats) {
    bool found = false;
    for (int i = 0; i < count; ++i) found = found || std::string(names[i]) == device;
    if (!found) {
      if (why)
        *why =
            std::string("PLplot has no '") + device + "' driver (Debian/Ubuntu: apt-get install plplot-driver-cairo)";
      return false;
    }
  }
  return true;
}

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
  render(stem, vector, 1400, 600, [&](plstream& pls) {
    pls.ssub(2, 1);
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
    // Loss.
    pls.adv(0);
    pls.vpor(0.17, 0.96, 0.14, 0.88);  // room for the y label inside the half page
    const double loss_top = top_loss * 1.08 + 1e-9;
    axes(pls, 0.5, right, 0, loss_top, "Epoch", "Cross-entropy", title + ": loss");
    stage_marks(pls, longest_run, 0, loss_top);
    for (std::size_t f = 0; f < folds.size(); ++f) {
      const int colour = class_colour(static_cast<int>(f));
      draw(folds[f].second, &evaluation::EpochRecord::train_loss, colour, 2);
      draw(folds[f].second, &evaluation::EpochRecord::val_loss, colour, 1);
      legend.push_back({folds[f].first, colour, 1, 2.0});
    }
    // One legend for both panels, in the right one's empty lower part (scores start high).
    legend.push_back({"validation loss, macro-F1", kInk, 1, 1.0});
    legend.push_back({"training loss", kInk, 2, 1.0});
    legend.push_back({"validation accuracy", kInk, 3, 1.0});
    // Validation macro-F1 and accuracy.
    pls.adv(0);
    pls.vpor(0.17, 0.96, 0.14, 0.88);  // room for the y label inside the half page
    axes(pls, 0.5, right, 0, 1.02, "Epoch", "Validation macro-F1 / accuracy", title + ": validation");
    stage_marks(pls, longest_run, 0, 1.02);
    for (std::size_t f = 0; f < folds.size(); ++f) {
      const int colour = class_colour(static_cast<int>(f));
      draw(folds[f].second, &evaluation::EpochRecord::val_macro_f1, colour, 1);
      draw(folds[f].second, &evaluation::EpochRecord::val_accuracy, colour, 3);
    }
    draw_legend(pls, legend, PL_POSITION_RIGHT | PL_POSITION_BOTTOM | PL_POSITION_INSIDE, 0.7);
  });
}

void plot_training_curves(const std::vector<evaluation::EpochRecord>& epochs, const std::string& title,
                          const fs::path& stem, bool vector) {
  if (epochs.empty()) throw std::invalid_argument("no epochs to plot in " + stem.string());
  std::vector<double> x(epochs.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
  auto column = [&](double evaluation::EpochRecord::*field) { return epoch_column(epochs, field); };
  render(stem, vector, 1400, 600, [&](plstream& pls) {
    pls.ssub(2, 1);
    const auto n = static_cast<PLINT>(x.size());
    const double right = static_cast<double>(x.size()) + 0.5;
    // Loss.
    pls.adv(0);
    pls.vpor(0.17, 0.96, 0.14, 0.88);  // room for the y label inside the half page
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
    draw_legend(pls, {{"training", class_colour(0), 1, 2.0}, {"validation", class_colour(1), 1, 2.0}},
                PL_POSITION_RIGHT | PL_POSITION_TOP | PL_POSITION_INSIDE, 0.9);
    // Accuracy and macro-F1.
    pls.adv(0);
    pls.vpor(0.17, 0.96, 0.14, 0.88);  // room for the y label inside the half page
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
    draw_legend(pls,
                {{"training accuracy", class_colour(0), 1, 2.0},
                 {"validation accuracy", class_colour(1), 1, 2.0},
                 {"validation macro-F1", class_colour(2), 2, 2.0}},
                PL_POSITION_RIGHT | PL_POSITION_BOTTOM | PL_POSITION_INSIDE, 0.9);
  });
}

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
      pls.schr(0, 0.8);
      pls.ptex(best_trial, best + 0.03 * (high - low), 0, 0, 0.5,
               ("best: trial " + std::to_string(best_trial)).c_str());
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
          pls.ptex(x + 0.03, position(a, static_cast<double>(c)), 0, 0, 0, categories[c].c_str());
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
  render(stem, vector, 1100, 150 + 26 * static_cast<int>(rows.size()), [&](plstream& pls) {
    pls.adv(0);
    pls.vpor(0.36, 0.96, 90.0 / (150 + 26 * n), 1 - 60.0 / (150 + 26 * n));
    pls.wind(x_min, 1.0, n, 0);  // the first row at the top
    pls.col0(kInk);
    pls.box("bcnst", 0, 0, "bc", 0, 0);
    pls.lab("Accuracy (bar: Wilson 95% interval; dashed: all images)", "", title.c_str());
    const PLFLT overall_x[2] = {overall_accuracy, overall_accuracy}, overall_y[2] = {0, n};
    pls.lsty(2);
    pls.line(2, overall_x, overall_y);
    pls.lsty(1);
    pls.schr(0, 0.85);
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
      pls.vpor(0.21, 0.95, 0.36, 0.9);
      pls.wind(0, 1, 0, 1);
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
      pls.wind(0, 1, 0, most * 1.1);
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
      pls.col0(kInk);
      pls.schr(0, 0.7);
      pls.mtex("r", 0.8, 1.0, 1.0, std::to_string(most).c_str());
      pls.schr(0, 0.95);
    }
  });
}

#else  // built without PLplot: the report has tables and text, no figures

bool plotting_available(std::string* why) {
  if (why)
    *why =
        "this brainmri was built without PLplot (Debian/Ubuntu: apt-get install libplplot-dev plplot-driver-cairo, "
        "then rebuild)";
  return false;
}
namespace {
[[noreturn]] void no_plots(const fs::path& stem) {
  std::string why;
  plotting_available(&why);
  throw std::runtime_error("cannot draw " + stem.string() + ": " + why);
}
}  // namespace
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
