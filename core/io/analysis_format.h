#pragma once

#include <string>

#include "analysis/advisor.h"
#include "analysis/shift_analysis.h"

namespace scalpel {

// One snapshot as a single JSON line (for `scalpel-cli analyze --json`, heatmaps in other tools).
std::string snapshotToJson(const ShiftSnapshot& snapshot);

// The final per-layer table and the output-level evidence, as `scalpel-cli analyze` prints them.
std::string analysisToText(const ShiftAnalysis& analysis, const std::string& targetDescription);

// The diagnosis, its evidence and the plan, as `scalpel-cli suggest` prints them.
std::string adviceToText(const Diagnosis& diagnosis, const FreezePlan& plan);

}  // namespace scalpel
