#pragma once
// Is model A really better than model B? Paired tests on the same images, and on the same folds:
//
// - DeLong's test for the difference of two correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson
//   1988), computed with the fast midrank algorithm of Sun & Xu (2014): O(n log n), ties counted
//   one half as in the AUC itself.
// - McNemar's exact test for paired accuracy: on the b images only A gets right and the c images
//   only B gets right, p = min(1, 2·P(X ≤ min(b, c))), X ~ Binomial(b + c, 1/2) (statsmodels'
//   `mcnemar(exact=True)`).
// - The Nadeau–Bengio corrected resampled t-test for two cross-validations on the same folds
//   (Nadeau & Bengio 2003): the folds' differences d_j, t = mean(d) / sqrt((1/J + n_test/n_train)·s²),
//   J − 1 degrees of freedom — the correction for the overlap of the training sets that makes the
//   plain paired t-test far too liberal.
// - Holm's step-down correction of several p-values (one per class).

#include <span>
#include <vector>

namespace brainmri::metrics {

struct PairedAucTest {
  double auc_a = 0, auc_b = 0;
  double difference = 0;  // auc_a − auc_b
  double standard_error = 0;
  double z = 0;
  double p_value = 0;  // two-sided; NaN when undefined (no positive or no negative image)
};

// `positive`: 1 for the images of the class, 0 for the others; `scores_a` and `scores_b`: the two
// models' scores of the same images. Throws std::invalid_argument for unequal sizes.
PairedAucTest delong_test(std::span<const int> positive, std::span<const double> scores_a,
                          std::span<const double> scores_b);

struct PairedAccuracyTest {
  int only_a_right = 0;  // b
  int only_b_right = 0;  // c
  double p_value = 1;
};
// `truth`, and each model's predicted class for the same images.
PairedAccuracyTest mcnemar_exact_test(std::span<const int> truth, std::span<const int> predicted_a,
                                      std::span<const int> predicted_b);

struct CorrectedTTest {
  double mean_difference = 0;
  double t = 0;
  int degrees_of_freedom = 0;
  double p_value = 0;  // two-sided; NaN for fewer than 2 folds or identical differences of 0 spread
};
// `differences`: metric of A minus metric of B on each fold; `test_to_train` = n_test / n_train
// (1 / (k − 1) for a k-fold cross-validation).
CorrectedTTest corrected_resampled_t_test(std::span<const double> differences, double test_to_train);

// Holm-adjusted p-values in the given order; NaNs stay NaN and do not count among the tests.
std::vector<double> holm_adjusted(std::span<const double> p_values);

}  // namespace brainmri::metrics
