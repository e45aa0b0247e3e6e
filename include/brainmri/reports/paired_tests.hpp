#pragma once
// Is run A better than run B, or is the difference noise? The paired tests of a comparison
// (`brainmri report A B ...`), on the images both runs evaluated (metrics/significance.hpp,
// metrics/bootstrap.hpp): McNemar's exact test of accuracy, DeLong's test of each class's
// one-vs-rest AUC (Holm-adjusted over the classes), the paired bootstrap interval of every
// difference (A − B), and for two cross-validations on the same folds the Nadeau–Bengio corrected
// resampled t-test over the folds. A pair on different images cannot be tested, and says why.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "brainmri/metrics/bootstrap.hpp"
#include "brainmri/metrics/significance.hpp"
#include "brainmri/reports/report.hpp"

namespace brainmri::reports {

inline constexpr double kSignificanceLevel = 0.05;

struct PairedComparison {
  std::string a, b;        // the runs' names
  std::string untestable;  // non-empty: why the pair cannot be tested (then nothing else is set)
  std::size_t images = 0;  // the images both evaluated, in `a`'s main evaluation
  std::vector<std::string> class_names;
  metrics::PairedAccuracyTest accuracy;           // McNemar, exact
  std::vector<metrics::PairedAucTest> class_auc;  // DeLong per class
  std::vector<double> class_auc_holm;             // their Holm-adjusted p-values
  metrics::PairedBootstrapIntervals differences;  // A − B
  // Two cross-validations on the same validation folds: the corrected t-test of the folds'
  // accuracy and macro-F1 differences; otherwise unset, with the reason.
  std::optional<metrics::CorrectedTTest> folds_accuracy, folds_macro_f1;
  std::string folds_untestable;
};

// `bootstrap_seed` seeds the paired bootstrap (1000 resamples, 95%).
PairedComparison compare_runs(const RunContents& a, const RunContents& b, std::uint64_t bootstrap_seed = 7);

nlohmann::json to_json(const PairedComparison& comparison);
// A Markdown section: a heading, then one row per difference with its estimate, paired bootstrap
// interval, test, p-value and whether it is significant at kSignificanceLevel.
std::string markdown(const PairedComparison& comparison);

}  // namespace brainmri::reports
