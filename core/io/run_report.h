#pragma once

// What one fine-tuning run did and achieved: embedded in the exported model as
// kRunReportFile, stored in sessions, and written out as Markdown with PNG plots. Torch-free.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "analysis/advisor.h"
#include "analysis/plan_candidates.h"
#include "train/trainer.h"

namespace scalpel {

inline constexpr const char* kRunReportFile = "scalpel/report.json";
inline constexpr int kRunReportFormat = 1;

// Which data a run saw, so a report can be matched with the data later.
struct DataFingerprint {
  std::string role;         // "train", "validation", "test"
  std::string description;  // DataRequest::describe(), or a path
  std::size_t items = 0;
  std::string fingerprint;  // datasetFingerprint()
};

// One layer's activation shift at the end of the analysis, for the report's bar chart.
struct LayerShift {
  std::string layer;
  double kl = 0;
  double noiseFloor = 0;
};

struct RunReport {
  int format = kRunReportFormat;
  std::string scalpelVersion;
  std::string torchVersion;
  std::string createdUtc;  // ISO 8601
  std::string modelPath;
  std::string modelFingerprint;  // fileFingerprint() of the model that was tuned
  std::string diagnosis;         // Diagnosis::summary, when the advisor ran
  std::vector<std::string> evidence;
  FreezePlan plan;
  PlanSearch search;  // strategy auto: the candidates it tried, their scores and the choice
  TrainOptions options;
  std::vector<DataFingerprint> data;
  std::vector<LayerShift> layerShifts;
  // From the TrainResult:
  std::string device;
  std::string outcome;  // "finished", "stopped early", "cancelled", "diverged", "failed"
  std::string message;  // the error or stop reason, if any
  std::int64_t trainableParameters = 0;
  std::int64_t frozenParameters = 0;
  Evaluation validationBefore, testBefore, validationAfter, testAfter;
  Evaluation sourceBefore, sourceAfter, validationRecalibrated;
  std::vector<EvaluationPoint> history;
  int bestEvaluation = -1;
  std::size_t steps = 0;
  double seconds = 0;
  std::string frozenCache;  // TrainResult::frozenCache: cached, or why not
  double cacheSeconds = 0;
  int resumedEpochs = 0;  // TrainResult::resumedEpochs: the search's epochs the run went on from
};

// Fills the result part of a report (outcome, metrics, history) from a finished run.
void fillRunReport(const TrainResult& result, RunReport& report);
// The other way, for a run that happened elsewhere (a job folder's tuned model): the result a
// window shows and exports, with `tunedModel` as the model's bytes.
TrainResult resultOfReport(const RunReport& report, std::shared_ptr<const std::string> tunedModel);

std::string runReportToJson(const RunReport& report);
// Returns "" or what is wrong with the JSON (malformed, a newer format).
std::string parseRunReport(const std::string& json, RunReport& report);

// Writes report.md with curves.png (training and validation loss, validation accuracy per
// evaluation) and, when the report has layer shifts, layer-shift.png into `folder` (created when
// missing), each file atomically. Returns "" or what went wrong.
std::string writeReportFolder(const RunReport& report, const std::filesystem::path& folder);

}  // namespace scalpel
