#pragma once
// What the figure files of the reports library share (internal, not installed): the palette,
// drawing one figure with every Cairo driver through a temporary file, legends and axes.

#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#ifdef BRAINMRI_HAVE_PLPLOT
#include <plplot/plstream.h>
#endif

namespace brainmri::reports::plotting {

#ifdef BRAINMRI_HAVE_PLPLOT

// Colour map 0: background, ink, a light grey, then the class colours (Tableau 10, readable in
// print and by most colour-blind readers); the rest are alpha variants made per figure.
inline constexpr int kBackground = 0, kInk = 1, kGrey = 2, kDarkGrey = 63, kFirstClass = 3;
inline constexpr std::array<std::array<int, 3>, 10> kClassColours = {{{31, 119, 180},
                                                                      {255, 127, 14},
                                                                      {44, 160, 44},
                                                                      {214, 39, 40},
                                                                      {148, 103, 189},
                                                                      {140, 86, 75},
                                                                      {227, 119, 194},
                                                                      {127, 127, 127},
                                                                      {188, 189, 34},
                                                                      {23, 190, 207}}};
inline constexpr int kPaletteSize = 64;

inline const std::array<std::pair<const char*, const char*>, 3> kFormats = {
    {{"pngcairo", "png"}, {"svgcairo", "svg"}, {"pdfcairo", "pdf"}}};

void set_palette(plstream& pls);
int class_colour(int c);
// A translucent copy of a class colour in a free palette slot.
int translucent(plstream& pls, int c, double alpha, int slot);
// Draws the same figure with each Cairo driver (PNG, and SVG and PDF when `vector`), each through
// a temporary file and a rename.
void render(const std::filesystem::path& stem, bool vector, int width, int height,
            const std::function<void(plstream&)>& draw);

struct LegendEntry {
  std::string text;
  int colour;
  int style;  // PLplot line style (1 solid, 2 dashed, 3 dotted...)
  double width;
};

// `columns` > 0 lays the entries out in that many columns; `y_offset`: from the anchoring edge, as
// a fraction of the viewport (below an x axis' labels for a legend outside at the bottom);
// `line_length`: each entry's line sample, as a fraction of the viewport's width.
void draw_legend(plstream& pls, const std::vector<LegendEntry>& entries, PLINT position, double text_scale,
                 int columns = 0, double y_offset = 0.02, double line_length = 0.08);
void axes(plstream& pls, double xmin, double xmax, double ymin, double ymax, const char* xlabel, const char* ylabel,
          const std::string& title);
// A square ROC panel: axes from 0 to 1, labels, and the chance diagonal.
void roc_frame(plstream& pls, const std::string& title);
// printf of one number into a std::string.
std::string format(const char* pattern, double value);
// Text at world coordinates (x, y) like plstream::ptex, drawn over a halo of the background
// colour so that it stays readable where lines cross it; `colour` is the text's palette index.
void text_with_halo(plstream& pls, double x, double y, double justification, const std::string& text, int colour);
#else
// Built without PLplot: every figure function throws, saying what to install.
[[noreturn]] void no_plots(const std::filesystem::path& stem);
#endif

}  // namespace brainmri::reports::plotting
