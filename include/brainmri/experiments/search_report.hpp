#pragma once
// The report of a hyperparameter search (brainmri tune), from its trials.json alone: the objective
// of every trial in order with the running best, the hyperparameters in parallel coordinates, the
// rungs of a successive-halving search and the importance of each hyperparameter — figures,
// search_report.md and index.html in DIR/report/.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "brainmri/reports/figures.hpp"
#include "brainmri/reports/report.hpp"

namespace brainmri::experiments {

// How strongly the objective depends on each searched option, over the trials' objective at rung 0
// (every trial that ran it, at the same budget; later rungs hold only the promoted, a biased
// sample): Spearman's ρ for a number (signed: + means larger values scored higher), the
// correlation ratio η for a choice. Marginal, one parameter at a time: interactions are not seen.
std::vector<reports::ParameterImportance> parameter_importance(const nlohmann::json& trials_json);

// Writes the report of `search_directory` into `output` and returns its importance as JSON.
// Throws std::runtime_error naming trials.json when it is missing or not a search's table.
nlohmann::json write_search_report(const std::filesystem::path& search_directory, const std::filesystem::path& output,
                                   const reports::ReportOptions& options = {});

}  // namespace brainmri::experiments
