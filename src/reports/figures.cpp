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

void draw_legend(plstream& pls, const std::vector<LegendEntry>& entries, PLINT position, double text_scale) {
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
  pls.legend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, position, 0.02, 0.02, 0.08,
             kBackground, kInk, 1, 0, 0, n, options.data(), 1.0, text_scale, 2.0, 0.0, text_colours.data(),
             texts.data(), nullptr, nullptr, nullptr, nullptr, colours.data(), styles.data(), widths.data(), nullptr,
             nullptr, nullptr, nullptr);
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

void plot_training_curves(const std::vector<evaluation::EpochRecord>& epochs, const std::string& title,
                          const fs::path& stem, bool vector) {
  if (epochs.empty()) throw std::invalid_argument("no epochs to plot in " + stem.string());
  std::vector<double> x(epochs.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
  auto column = [&](double evaluation::EpochRecord::*field) {
    std::vector<double> v;
    for (const auto& e : epochs) v.push_back(e.*field);
    return v;
  };
  render(stem, vector, 1400, 600, [&](plstream& pls) {
    pls.ssub(2, 1);
    const auto n = static_cast<PLINT>(x.size());
    const double right = static_cast<double>(x.size()) + 0.5;
    auto stage_marks = [&](double ymin, double ymax) {
      for (std::size_t i = 1; i < epochs.size(); ++i) {
        if (epochs[i].stage == epochs[i - 1].stage) continue;
        const PLFLT sx[2] = {i + 0.5, i + 0.5}, sy[2] = {ymin, ymax};
        pls.col0(kGrey);
        pls.lsty(3);
        pls.line(2, sx, sy);
        pls.lsty(1);
        pls.ptex(i + 0.6, ymax - 0.04 * (ymax - ymin), 1, 0, 0, epochs[i].stage.c_str());
      }
    };
    // Loss.
    pls.adv(0);
    pls.vpor(0.12, 0.95, 0.14, 0.88);
    const auto train_loss = column(&evaluation::EpochRecord::train_loss),
               val_loss = column(&evaluation::EpochRecord::val_loss);
    double top = 0;
    for (std::size_t i = 0; i < x.size(); ++i) top = std::max({top, train_loss[i], val_loss[i]});
    axes(pls, 0.5, right, 0, top * 1.08 + 1e-9, "Epoch", "Cross-entropy", title + ": loss");
    stage_marks(0, top * 1.08 + 1e-9);
    pls.width(2.0);
    pls.col0(class_colour(0));
    pls.line(n, x.data(), train_loss.data());
    pls.col0(class_colour(1));
    pls.line(n, x.data(), val_loss.data());
    draw_legend(pls, {{"training", class_colour(0), 1, 2.0}, {"validation", class_colour(1), 1, 2.0}},
                PL_POSITION_RIGHT | PL_POSITION_TOP | PL_POSITION_INSIDE, 0.9);
    // Accuracy and macro-F1.
    pls.adv(0);
    pls.vpor(0.12, 0.95, 0.14, 0.88);
    const auto train_accuracy = column(&evaluation::EpochRecord::train_accuracy),
               val_accuracy = column(&evaluation::EpochRecord::val_accuracy),
               val_f1 = column(&evaluation::EpochRecord::val_macro_f1);
    axes(pls, 0.5, right, 0, 1.02, "Epoch", "Accuracy / macro-F1", title + ": accuracy");
    stage_marks(0, 1.02);
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
void plot_gradcam_grid(const std::vector<std::vector<std::optional<CamTile>>>&, int, const std::vector<std::string>&,
                       const std::string&, const fs::path& stem, bool) {
  no_plots(stem);
}

#endif

}  // namespace brainmri::reports
