#pragma once
// How strongly an outcome depends on a setting, for a search's parameter importance: Spearman's
// rank correlation for a numeric setting (monotone dependence, in [-1, 1]) and the correlation
// ratio η for a categorical one (the share of the outcome's spread explained by the category, in
// [0, 1]; η² is ANOVA's between-group sum of squares over the total).

#include <vector>

namespace brainmri::metrics {

// Ranks from 1, ties sharing their mean rank (scipy.stats.rankdata's "average").
std::vector<double> average_ranks(const std::vector<double>& values);

// Spearman's ρ: Pearson's correlation of the average ranks (scipy.stats.spearmanr). NaN when
// fewer than 3 pairs or either side is constant. Throws std::invalid_argument for unequal sizes.
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);

// η = sqrt(Σ_g n_g (mean_g − mean)² / Σ_i (y_i − mean)²) over the groups `group` (any integer
// labels). NaN when fewer than 3 values, one group only, or a constant outcome. Throws
// std::invalid_argument for unequal sizes.
double correlation_ratio(const std::vector<int>& group, const std::vector<double>& y);

}  // namespace brainmri::metrics
