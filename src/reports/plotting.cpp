#include "plotting.hpp"

#include <cstdio>
#include <stdexcept>

#include "brainmri/common/atomic_file.hpp"
#include "brainmri/reports/figures.hpp"

namespace brainmri::reports {
namespace fs = std::filesystem;

#ifdef BRAINMRI_HAVE_PLPLOT
namespace plotting {

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

int translucent(plstream& pls, int c, double alpha, int slot) {
  const auto& rgb = kClassColours[static_cast<std::size_t>(c) % kClassColours.size()];
  const int index = kFirstClass + static_cast<int>(kClassColours.size()) + slot;
  pls.scol0a(index, rgb[0], rgb[1], rgb[2], alpha);
  return index;
}

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

void draw_legend(plstream& pls, const std::vector<LegendEntry>& entries, PLINT position, double text_scale, int columns,
                 double y_offset, double line_length) {
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
             line_length, kBackground, kInk, 1, rows, columns, n, options.data(), 1.0, text_scale, 2.0, 0.0,
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

void text_with_halo(plstream& pls, double x, double y, double justification, const std::string& text, int colour) {
  // The halo: the text drawn at eight small offsets in the background colour, then over them.
  PLFLT xmin, xmax, ymin, ymax;
  pls.gvpw(xmin, xmax, ymin, ymax);
  const double dx = (xmax - xmin) * 0.0015, dy = (ymax - ymin) * 0.003;
  pls.col0(kBackground);
  for (const auto& [ox, oy] :
       {std::pair{-dx, 0.0}, {dx, 0.0}, {0.0, -dy}, {0.0, dy}, {-dx, -dy}, {dx, dy}, {-dx, dy}, {dx, -dy}})
    pls.ptex(x + ox, y + oy, 0, 0, justification, text.c_str());
  pls.col0(colour);
  pls.ptex(x, y, 0, 0, justification, text.c_str());
}

}  // namespace plotting

bool plotting_available(std::string* why) {
  const char** menus = nullptr;
  const char** names = nullptr;
  int count = 64;
  std::vector<const char*> menu_storage(64), name_storage(64);
  menus = menu_storage.data();
  names = name_storage.data();
  plgDevs(&menus, &names, &count);
  for (const auto& [device, extension] : plotting::kFormats) {
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

#else  // built without PLplot: the report has tables and text, no figures

bool plotting_available(std::string* why) {
  if (why)
    *why =
        "this brainmri was built without PLplot (Debian/Ubuntu: apt-get install libplplot-dev plplot-driver-cairo, "
        "then rebuild)";
  return false;
}

namespace plotting {
[[noreturn]] void no_plots(const fs::path& stem) {
  std::string why;
  plotting_available(&why);
  throw std::runtime_error("cannot draw " + stem.string() + ": " + why);
}
}  // namespace plotting

#endif

}  // namespace brainmri::reports
