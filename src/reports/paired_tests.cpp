#include "brainmri/reports/paired_tests.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "brainmri/evaluation/evaluation_files.hpp"
#include "brainmri/metrics/classification.hpp"
#include "brainmri/reports/number_text.hpp"

namespace brainmri::reports {
using evaluation::number_or_null;
using nlohmann::json;

namespace {

std::string run_name(const RunContents& run) { return run.directory.filename().string(); }

// Sample id -> row of a prediction set.
std::map<std::int64_t, std::size_t> rows_by_id(const evaluation::Predictions& p) {
  std::map<std::int64_t, std::size_t> rows;
  for (std::size_t i = 0; i < p.sample_ids.size(); ++i) rows.emplace(p.sample_ids[i], i);
  return rows;
}

// `b`'s rows in the order of `a`'s sample ids; empty text when they are the same labelled images,
// else why not.
std::string aligned(const evaluation::Predictions& a, const evaluation::Predictions& b, std::size_t class_count,
                    evaluation::Predictions& b_in_a_order) {
  const auto rows = rows_by_id(b);
  std::size_t shared = 0;
  for (const auto id : a.sample_ids) shared += rows.count(id);
  if (shared != a.sample_ids.size() || rows.size() != a.sample_ids.size()) {
    return "they evaluated different images (" + std::to_string(a.sample_ids.size()) + " and " +
           std::to_string(b.sample_ids.size()) + ", " + std::to_string(shared) +
           " in common); paired tests need the same images: the same dataset and the same selection";
  }
  b_in_a_order = {};
  b_in_a_order.sample_ids = a.sample_ids;
  for (std::size_t i = 0; i < a.sample_ids.size(); ++i) {
    const auto row = rows.at(a.sample_ids[i]);
    if (b.labels[row] != a.labels[i]) {
      return "sample " + std::to_string(a.sample_ids[i]) +
             " carries different labels in the two runs: they were evaluated on different datasets";
    }
    b_in_a_order.labels.push_back(b.labels[row]);
    b_in_a_order.probabilities.insert(b_in_a_order.probabilities.end(),
                                      b.probabilities.begin() + static_cast<std::ptrdiff_t>(row * class_count),
                                      b.probabilities.begin() + static_cast<std::ptrdiff_t>((row + 1) * class_count));
  }
  return "";
}

// The corrected t-test needs each fold of A to hold exactly the images of the same fold of B.
std::string same_folds(const RunContents& a, const RunContents& b) {
  if (a.kind != "cv" || b.kind != "cv") return "only two cross-validations have folds to compare";
  if (a.folds.size() != b.folds.size()) return "the cross-validations ran different folds";
  for (std::size_t f = 0; f < a.folds.size(); ++f) {
    const auto& fa = a.folds[f].predictions.sample_ids;
    const auto& fb = b.folds[f].predictions.sample_ids;
    if (a.folds[f].key != b.folds[f].key ||
        std::set<std::int64_t>(fa.begin(), fa.end()) != std::set<std::int64_t>(fb.begin(), fb.end())) {
      return a.folds[f].key +
             " holds other images in the two runs (folds dealt differently, e.g. --folds-by): the "
             "corrected t-test pairs the same folds";
    }
  }
  return "";
}

json interval_json(const metrics::Interval& i) { return {{"estimate", i.estimate}, {"low", i.low}, {"high", i.high}}; }

std::string p_text(double p) {
  if (std::isnan(p)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof(text), p < 1e-4 ? "%.1e" : "%.4f", p);
  return text;
}

bool interval_excludes_zero(const metrics::Interval& i) { return i.low > 0 || i.high < 0; }

}  // namespace

PairedComparison compare_runs(const RunContents& a, const RunContents& b, std::uint64_t bootstrap_seed) {
  PairedComparison result;
  result.a = run_name(a);
  result.b = run_name(b);
  result.class_names = a.class_names;
  if (a.class_names != b.class_names) {
    result.untestable = "the runs have different classes";
    return result;
  }
  const auto k = a.class_names.size();
  const auto& pa = a.main->predictions;
  evaluation::Predictions pb;
  result.untestable = aligned(pa, b.main->predictions, k, pb);
  if (!result.untestable.empty()) return result;
  result.images = pa.labels.size();

  const int classes = static_cast<int>(k);
  result.accuracy = metrics::mcnemar_exact_test(pa.labels, metrics::argmax_rows(pa.probabilities, classes),
                                                metrics::argmax_rows(pb.probabilities, classes));
  std::vector<double> raw_p;
  for (std::size_t c = 0; c < k; ++c) {
    std::vector<int> positive(pa.labels.size());
    std::vector<double> score_a(pa.labels.size()), score_b(pa.labels.size());
    for (std::size_t i = 0; i < pa.labels.size(); ++i) {
      positive[i] = pa.labels[i] == static_cast<int>(c) ? 1 : 0;
      score_a[i] = pa.probabilities[i * k + c];
      score_b[i] = pb.probabilities[i * k + c];
    }
    result.class_auc.push_back(metrics::delong_test(positive, score_a, score_b));
    raw_p.push_back(result.class_auc.back().p_value);
  }
  result.class_auc_holm = metrics::holm_adjusted(raw_p);
  result.differences = metrics::paired_bootstrap_differences(pa.labels, pa.probabilities, pb.probabilities, classes,
                                                             {1000, 0.95, bootstrap_seed});

  result.folds_untestable = same_folds(a, b);
  if (result.folds_untestable.empty()) {
    std::vector<double> accuracy, macro_f1;
    double test_to_train = 0;
    for (std::size_t f = 0; f < a.folds.size(); ++f) {
      accuracy.push_back(a.folds[f].metrics.accuracy - b.folds[f].metrics.accuracy);
      macro_f1.push_back(a.folds[f].metrics.macro_average.f1 - b.folds[f].metrics.macro_average.f1);
      const auto held = static_cast<double>(a.folds[f].predictions.sample_ids.size());
      test_to_train += held / (static_cast<double>(result.images) - held) / static_cast<double>(a.folds.size());
    }
    result.folds_accuracy = metrics::corrected_resampled_t_test(accuracy, test_to_train);
    result.folds_macro_f1 = metrics::corrected_resampled_t_test(macro_f1, test_to_train);
  }
  return result;
}

json to_json(const PairedComparison& c) {
  json out = {{"a", c.a}, {"b", c.b}, {"significance_level", kSignificanceLevel}};
  if (!c.untestable.empty()) {
    out["untestable"] = c.untestable;
    return out;
  }
  out["images"] = c.images;
  out["accuracy"] = {{"difference", interval_json(c.differences.accuracy)},
                     {"mcnemar_exact",
                      {{"only_a_right", c.accuracy.only_a_right},
                       {"only_b_right", c.accuracy.only_b_right},
                       {"p_value", c.accuracy.p_value}}}};
  out["macro_f1"] = {{"difference", interval_json(c.differences.macro_f1)}};
  out["macro_auc"] = {{"difference", interval_json(c.differences.macro_auc)}};
  json per_class = json::object();
  for (std::size_t k = 0; k < c.class_names.size(); ++k) {
    const auto& t = c.class_auc[k];
    per_class[c.class_names[k]] = {{"auc_a", number_or_null(t.auc_a)},
                                   {"auc_b", number_or_null(t.auc_b)},
                                   {"difference", interval_json(c.differences.auc_per_class[k])},
                                   {"delong",
                                    {{"z", number_or_null(t.z)},
                                     {"standard_error", number_or_null(t.standard_error)},
                                     {"p_value", number_or_null(t.p_value)},
                                     {"p_value_holm", number_or_null(c.class_auc_holm[k])}}}};
  }
  out["auc_per_class"] = per_class;
  if (c.folds_accuracy) {
    const auto fold_json = [](const metrics::CorrectedTTest& t) {
      return json{{"mean_difference", t.mean_difference},
                  {"t", number_or_null(t.t)},
                  {"degrees_of_freedom", t.degrees_of_freedom},
                  {"p_value", number_or_null(t.p_value)}};
    };
    out["folds"] = {{"accuracy", fold_json(*c.folds_accuracy)}, {"macro_f1", fold_json(*c.folds_macro_f1)}};
  } else {
    out["folds"] = {{"untestable", c.folds_untestable}};
  }
  return out;
}

std::string markdown(const PairedComparison& c) {
  std::ostringstream md;
  md << "### " << c.a << " vs " << c.b << "\n\n";
  if (!c.untestable.empty()) {
    md << "Not tested: " << c.untestable << ".\n";
    return md.str();
  }
  md << "Paired on the " << c.images << " images both evaluated; differences are " << c.a << " − " << c.b
     << "; significant at " << kSignificanceLevel << ": p below it, or for rows without a test a paired bootstrap "
     << "interval without 0.\n\n"
     << "| difference | " << c.a << " − " << c.b
     << " | paired bootstrap 95% interval | test | p | significant |\n|---|---|---|---|---|---|\n";
  const auto interval = [](const metrics::Interval& i) {
    return "[" + signed_fixed(i.low) + ", " + signed_fixed(i.high) + "]";
  };
  const auto yes_no = [](bool significant) { return significant ? "**yes**" : "no"; };
  md << "| accuracy | " << signed_fixed(c.differences.accuracy.estimate) << " | " << interval(c.differences.accuracy)
     << " | McNemar, exact (" << c.accuracy.only_a_right << " images only " << c.a << " gets right, "
     << c.accuracy.only_b_right << " only " << c.b << ") | " << p_text(c.accuracy.p_value) << " | "
     << yes_no(c.accuracy.p_value < kSignificanceLevel) << " |\n";
  for (const auto& [name, difference] :
       {std::pair{"macro-F1", &c.differences.macro_f1}, std::pair{"macro AUC", &c.differences.macro_auc}}) {
    md << "| " << name << " | " << signed_fixed(difference->estimate) << " | " << interval(*difference)
       << " | paired bootstrap | — | " << yes_no(interval_excludes_zero(*difference)) << " |\n";
  }
  for (std::size_t k = 0; k < c.class_names.size(); ++k) {
    const auto& t = c.class_auc[k];
    md << "| AUC " << c.class_names[k] << " | " << signed_fixed(t.difference) << " | "
       << interval(c.differences.auc_per_class[k]) << " | DeLong (p " << p_text(t.p_value) << "), Holm over "
       << c.class_names.size() << " classes | " << p_text(c.class_auc_holm[k]) << " | "
       << yes_no(c.class_auc_holm[k] < kSignificanceLevel) << " |\n";
  }
  if (c.folds_accuracy) {
    for (const auto& [name, t] : {std::pair{"accuracy over the folds", &*c.folds_accuracy},
                                  std::pair{"macro-F1 over the folds", &*c.folds_macro_f1}}) {
      char test[96];
      std::snprintf(test, sizeof(test), "Nadeau–Bengio corrected t (t = %.2f, %d df)", t->t, t->degrees_of_freedom);
      md << "| " << name << " | " << signed_fixed(t->mean_difference) << " | — | " << test << " | "
         << p_text(t->p_value) << " | " << yes_no(t->p_value < kSignificanceLevel) << " |\n";
    }
  } else {
    md << "\nNo test over the folds: " << c.folds_untestable << ".\n";
  }
  return md.str();
}

}  // namespace brainmri::reports
