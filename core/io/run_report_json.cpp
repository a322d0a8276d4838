// The run report's JSON form (kRunReportFile in exported models, and inside sessions).

#include "io/run_report.h"
#include "io/train_format.h"

namespace scalpel {

void fillRunReport(const TrainResult& result, RunReport& report) {
  // A diverged or cancelled run still keeps its best state, so those flags win over `ok`.
  if (result.diverged) {
    report.outcome = "diverged";
  } else if (result.cancelled) {
    report.outcome = "cancelled";
  } else if (result.ok) {
    report.outcome = result.stoppedEarly ? "stopped early" : "finished";
  } else {
    report.outcome = "failed";
  }
  report.message = result.note.empty()    ? result.error
                   : result.error.empty() ? result.note
                                          : result.error + "; " + result.note;
  report.device = result.device;
  report.trainableParameters = result.trainableParameters;
  report.frozenParameters = result.frozenParameters;
  report.validationBefore = result.validationBefore;
  report.testBefore = result.testBefore;
  report.validationAfter = result.validationAfter;
  report.testAfter = result.testAfter;
  report.sourceBefore = result.sourceBefore;
  report.sourceAfter = result.sourceAfter;
  report.validationRecalibrated = result.validationRecalibrated;
  report.history = result.history;
  report.bestEvaluation = result.bestEvaluation;
  report.steps = result.steps;
  report.seconds = result.seconds;
  report.frozenCache = result.frozenCache;
  report.cacheSeconds = result.cacheSeconds;
  report.resumedEpochs = result.resumedEpochs;
}

TrainResult resultOfReport(const RunReport& report, std::shared_ptr<const std::string> tunedModel) {
  TrainResult result;
  result.diverged = report.outcome == "diverged";
  result.cancelled = report.outcome == "cancelled";
  result.stoppedEarly = report.outcome == "stopped early";
  result.ok = report.outcome == "finished" || result.stoppedEarly;
  result.error = report.message;
  result.device = report.device;
  result.trainableParameters = report.trainableParameters;
  result.frozenParameters = report.frozenParameters;
  result.validationBefore = report.validationBefore;
  result.testBefore = report.testBefore;
  result.validationAfter = report.validationAfter;
  result.testAfter = report.testAfter;
  result.sourceBefore = report.sourceBefore;
  result.sourceAfter = report.sourceAfter;
  result.validationRecalibrated = report.validationRecalibrated;
  result.history = report.history;
  result.bestEvaluation = report.bestEvaluation;
  result.steps = report.steps;
  result.seconds = report.seconds;
  result.frozenCache = report.frozenCache;
  result.cacheSeconds = report.cacheSeconds;
  result.resumedEpochs = report.resumedEpochs;
  result.tunedModel = std::move(tunedModel);
  return result;
}

std::string runReportToJson(const RunReport& report) {
  // Replace invalid UTF-8 (a path in a legacy encoding) rather than throw.
  return toJson(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
         "\n";
}

std::string parseRunReport(const std::string& text, RunReport& report) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    return "not JSON: " + jsonErrorText(error);
  }
  if (!json.is_object()) {
    return "not a Scalpel run report (the JSON holds " + describeJsonType(json) +
           ", not an object)";
  }
  const auto format = json.find("format");
  if (format == json.end()) return "not a Scalpel run report (no format field)";
  if (!format->is_number_integer()) {
    return "not a Scalpel run report (format should be a whole number, not " +
           describeJsonType(*format) + ")";
  }
  const auto version = format->get<std::int64_t>();
  if (version > kRunReportFormat) {
    return "report format " + std::to_string(version) +
           " is newer than this Scalpel understands (" + std::to_string(kRunReportFormat) +
           ") — update Scalpel";
  }
  if (version < 1) return "report format " + std::to_string(version) + " is not one Scalpel wrote";
  try {
    // Lenient: a report that an older or newer Scalpel wrote a field of differently still opens,
    // with that field at its default.
    RunReport parsed;
    fromJson(json, parsed, false);
    parsed.format = static_cast<int>(version);
    report = std::move(parsed);
    return {};
  } catch (const std::exception& error) {
    return "not a Scalpel run report: " + jsonErrorText(error);
  }
}

}  // namespace scalpel
