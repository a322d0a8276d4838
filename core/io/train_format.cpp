#include "io/train_format.h"

#include <cmath>
#include <cstdio>

namespace scalpel {

using nlohmann::json;
using nlohmann::ordered_json;

FormatError::FormatError(std::string field, std::string expected, std::string found)
    : std::runtime_error((field.empty() ? std::string("the value") : field) + " should be " +
                         expected + ", not " + found),
      m_field(std::move(field)),
      m_expected(std::move(expected)),
      m_found(std::move(found)) {}

FormatError FormatError::within(const std::string& key) const {
  std::string path = key;
  if (!m_field.empty()) path += (m_field.front() == '[' ? "" : ".") + m_field;
  return FormatError(path, m_expected, m_found);
}

std::string describeJsonType(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return value.dump();
    default:
      return "something else";
  }
}

std::string jsonErrorText(const std::exception& error) {
  std::string text = error.what();
  if (text.rfind("[json.exception.", 0) == 0) {
    const auto end = text.find("] ");
    if (end != std::string::npos) text.erase(0, end + 2);
  }
  return text;
}

namespace json_detail {

void readValue(const json& value, double& out, bool) {
  if (value.is_null()) {
    out = std::numeric_limits<double>::quiet_NaN();
  } else if (value.is_number()) {
    out = value.get<double>();
  } else {
    throw FormatError({}, "a number", describeJsonType(value));
  }
}

void readValue(const json& value, bool& out, bool) {
  if (value.is_null()) return;
  if (!value.is_boolean()) throw FormatError({}, "true or false", describeJsonType(value));
  out = value.get<bool>();
}

void readValue(const json& value, std::string& out, bool) {
  if (value.is_null()) return;
  if (!value.is_string()) throw FormatError({}, "a string", describeJsonType(value));
  out = value.get<std::string>();
}

void readWholeNumber(const json& value, long double low, long double high, long double& out) {
  long double number = 0;
  if (value.is_number_unsigned()) {
    number = static_cast<long double>(value.get<std::uint64_t>());
  } else if (value.is_number_integer()) {
    number = static_cast<long double>(value.get<std::int64_t>());
  } else if (value.is_number_float()) {
    // Hand-edited files may say 64.0; a fraction is a mistake.
    const double d = value.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) {
      throw FormatError({}, "a whole number", describeJsonType(value));
    }
    number = static_cast<long double>(d);
  } else {
    throw FormatError({}, "a whole number", describeJsonType(value));
  }
  if (number < low || number > high) {
    char range[96];
    std::snprintf(range, sizeof range, "a whole number from %.0Lf to %.0Lf", low, high);
    throw FormatError({}, range, describeJsonType(value));
  }
  out = number;
}

}  // namespace json_detail

JsonFields::JsonFields(const json& value, bool strict) : m_json(value), m_strict(strict) {
  if (!value.is_object()) throw FormatError({}, "an object", describeJsonType(value));
}

// ---- writing --------------------------------------------------------------------------------

ordered_json toJson(const TrainOptions& options) {
  ordered_json out;
  out["optimizer"] = options.optimizer;
  out["learning_rate"] = options.learningRate;
  out["weight_decay"] = options.weightDecay;
  out["momentum"] = options.momentum;
  out["schedule"] = options.schedule;
  out["warmup_fraction"] = options.warmupFraction;
  out["batch_size"] = options.batchSize;
  out["epochs"] = options.epochs;
  out["max_steps"] = options.maxSteps;
  out["loss"] = options.loss;
  out["evaluate_every_steps"] = options.evaluateEverySteps;
  out["select_by"] = options.selectBy;
  out["patience"] = options.patience;
  out["batch_norm_eval"] = options.batchNormEval;
  out["max_source_drop"] = options.maxSourceDrop;
  out["seed"] = options.seed;
  out["device"] = options.device;
  out["precision"] = options.precision;
  out["channels_last"] = options.channelsLast;
  out["data_path"] = options.dataPath;
  out["cache_frozen_part"] = options.cacheFrozenPart;
  return out;
}

ordered_json toJson(const FreezePlan& plan) {
  ordered_json out;
  out["strategy"] = plan.strategy;
  out["trainable"] = plan.trainable;
  out["learning_rate_scale"] = ordered_json::object();
  for (const auto& [module, scale] : plan.learningRateScale)
    out["learning_rate_scale"][module] = scale;
  out["explanation"] = plan.explanation;
  if (!plan.batchNorm.empty()) out["batch_norm"] = plan.batchNorm;
  if (plan.recalibrate) out["recalibrate"] = true;
  return out;
}

ordered_json toJson(const PlanCandidate& candidate) {
  ordered_json out;
  out["name"] = candidate.name;
  out["origin"] = candidate.origin;
  out["plan"] = toJson(candidate.plan);
  out["learning_rate"] = candidate.learningRate;
  out["epochs"] = candidate.epochs;
  out["validation"] = candidate.validation;
  out["source_after"] = candidate.sourceAfter;  // null when not measured
  out["seconds"] = candidate.seconds;
  out["outcome"] = candidate.outcome;
  return out;
}

ordered_json toJson(const PlanSearch& search) {
  ordered_json out;
  auto candidates = ordered_json::array();
  for (const auto& candidate : search.candidates) candidates.push_back(toJson(candidate));
  out["candidates"] = candidates;
  out["chosen"] = search.chosen;
  out["score_name"] = search.scoreName;
  out["validation_before"] = search.validationBefore;
  out["source_before"] = search.sourceBefore;
  out["max_source_drop"] = search.maxSourceDrop;
  out["seconds"] = search.seconds;
  out["full_model_epochs"] = search.fullModelEpochs;
  out["runs"] = search.runs;
  out["validation_items"] = search.validationItems;
  return out;
}

ordered_json toJson(const Evaluation& evaluation) {
  ordered_json out;
  out["loss"] = evaluation.loss;
  out["accuracy"] = evaluation.accuracy;
  out["per_class_accuracy"] = evaluation.perClassAccuracy;
  if (evaluation
          .regression) {  // written only for regression: classification files stay as they were
    out["regression"] = true;
    out["r2"] = evaluation.r2;
    out["mean_absolute_error"] = evaluation.meanAbsoluteError;
  }
  out["items"] = evaluation.items;
  return out;
}

ordered_json toJson(const EvaluationPoint& point) {
  ordered_json out;
  out["epoch"] = point.epoch;
  out["step"] = point.step;
  out["train_loss"] = point.trainLoss;
  out["validation"] = toJson(point.validation);
  return out;
}

ordered_json toJson(const DataRequest& request) {
  ordered_json out;
  out["source"] = request.source;
  out["split"] = request.split;
  out["shift"] = request.shift;
  out["severity"] = request.severity;
  out["seed"] = request.seed;
  out["item_shape"] = request.itemShape;
  out["class_names"] = request.classNames;
  if (!request.regressionTargets.empty()) out["regression_targets"] = request.regressionTargets;
  out["description"] = request.describe();
  return out;
}

ordered_json toJson(const DataFingerprint& data) {
  ordered_json out;
  out["role"] = data.role;
  out["description"] = data.description;
  out["items"] = data.items;
  out["fingerprint"] = data.fingerprint;
  return out;
}

ordered_json toJson(const LayerShift& shift) {
  ordered_json out;
  out["layer"] = shift.layer;
  out["kl"] = shift.kl;
  out["noise_floor"] = shift.noiseFloor;
  return out;
}

namespace {

template <typename T>
ordered_json toJsonArray(const std::vector<T>& items) {
  auto out = ordered_json::array();
  for (const auto& item : items) out.push_back(toJson(item));
  return out;
}

}  // namespace

ordered_json toJson(const RunReport& report) {
  ordered_json out;
  out["format"] = kRunReportFormat;  // written in this layout, whatever it was read from
  out["scalpel_version"] = report.scalpelVersion;
  out["torch_version"] = report.torchVersion;
  out["created_utc"] = report.createdUtc;
  out["model_path"] = report.modelPath;
  out["model_fingerprint"] = report.modelFingerprint;
  out["diagnosis"] = report.diagnosis;
  out["evidence"] = report.evidence;
  out["plan"] = toJson(report.plan);
  out["options"] = toJson(report.options);
  out["data"] = toJsonArray(report.data);
  out["layer_shifts"] = toJsonArray(report.layerShifts);
  out["device"] = report.device;
  out["outcome"] = report.outcome;
  out["message"] = report.message;
  out["trainable_parameters"] = report.trainableParameters;
  out["frozen_parameters"] = report.frozenParameters;
  out["validation_before"] = toJson(report.validationBefore);
  out["test_before"] = toJson(report.testBefore);
  out["validation_after"] = toJson(report.validationAfter);
  out["test_after"] = toJson(report.testAfter);
  if (report.sourceBefore.items) {
    out["source_before"] = toJson(report.sourceBefore);
    out["source_after"] = toJson(report.sourceAfter);
  }
  if (report.validationRecalibrated.items)
    out["validation_recalibrated"] = toJson(report.validationRecalibrated);
  if (!report.search.candidates.empty()) out["search"] = toJson(report.search);
  out["history"] = toJsonArray(report.history);
  out["best_evaluation"] = report.bestEvaluation;
  out["steps"] = report.steps;
  out["seconds"] = report.seconds;
  out["frozen_cache"] = report.frozenCache;
  out["cache_seconds"] = report.cacheSeconds;
  if (report.resumedEpochs) out["resumed_epochs"] = report.resumedEpochs;
  return out;
}

// ---- reading --------------------------------------------------------------------------------

void fromJson(const json& value, TrainOptions& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("optimizer", out.optimizer);
  fields.read("learning_rate", out.learningRate);
  fields.read("weight_decay", out.weightDecay);
  fields.read("momentum", out.momentum);
  fields.read("schedule", out.schedule);
  fields.read("warmup_fraction", out.warmupFraction);
  fields.read("batch_size", out.batchSize);
  fields.read("epochs", out.epochs);
  fields.read("max_steps", out.maxSteps);
  fields.read("loss", out.loss);
  fields.read("evaluate_every_steps", out.evaluateEverySteps);
  fields.read("select_by", out.selectBy);
  fields.read("patience", out.patience);
  fields.read("batch_norm_eval", out.batchNormEval);
  fields.read("max_source_drop", out.maxSourceDrop);
  fields.read("seed", out.seed);
  fields.read("device", out.device);
  fields.read("precision", out.precision);
  fields.read("channels_last", out.channelsLast);
  fields.read("data_path", out.dataPath);
  fields.read("cache_frozen_part", out.cacheFrozenPart);
}

void fromJson(const json& value, FreezePlan& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("strategy", out.strategy);
  fields.read("trainable", out.trainable);
  fields.read("learning_rate_scale", out.learningRateScale);
  fields.read("explanation", out.explanation);
  fields.read("batch_norm", out.batchNorm);
  fields.read("recalibrate", out.recalibrate);
}

void fromJson(const json& value, PlanCandidate& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("name", out.name);
  fields.read("origin", out.origin);
  fields.read("plan", out.plan);
  fields.read("learning_rate", out.learningRate);
  fields.read("epochs", out.epochs);
  fields.read("validation", out.validation);
  fields.read("source_after", out.sourceAfter);
  fields.read("seconds", out.seconds);
  fields.read("outcome", out.outcome);
}

void fromJson(const json& value, PlanSearch& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("candidates", out.candidates);
  fields.read("chosen", out.chosen);
  fields.read("score_name", out.scoreName);
  fields.read("validation_before", out.validationBefore);
  fields.read("source_before", out.sourceBefore);
  fields.read("max_source_drop", out.maxSourceDrop);
  fields.read("seconds", out.seconds);
  fields.read("full_model_epochs", out.fullModelEpochs);
  fields.read("runs", out.runs);
  fields.read("validation_items", out.validationItems);
  if (out.chosen >= static_cast<int>(out.candidates.size())) out.chosen = -1;
}

void fromJson(const json& value, Evaluation& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("loss", out.loss);
  fields.read("accuracy", out.accuracy);
  fields.read("per_class_accuracy", out.perClassAccuracy);
  fields.read("regression", out.regression);
  fields.read("r2", out.r2);
  fields.read("mean_absolute_error", out.meanAbsoluteError);
  fields.read("items", out.items);
}

void fromJson(const json& value, EvaluationPoint& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("epoch", out.epoch);
  fields.read("step", out.step);
  fields.read("train_loss", out.trainLoss);
  fields.read("validation", out.validation);
}

void fromJson(const json& value, DataRequest& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("source", out.source);
  fields.read("split", out.split);
  fields.read("shift", out.shift);
  fields.read("severity", out.severity);
  fields.read("seed", out.seed);
  fields.read("item_shape", out.itemShape);
  fields.read("class_names", out.classNames);
  fields.read("regression_targets", out.regressionTargets);
}

void fromJson(const json& value, DataFingerprint& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("role", out.role);
  fields.read("description", out.description);
  fields.read("items", out.items);
  fields.read("fingerprint", out.fingerprint);
}

void fromJson(const json& value, LayerShift& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("layer", out.layer);
  fields.read("kl", out.kl);
  fields.read("noise_floor", out.noiseFloor);
}

void fromJson(const json& value, RunReport& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("scalpel_version", out.scalpelVersion);
  fields.read("torch_version", out.torchVersion);
  fields.read("created_utc", out.createdUtc);
  fields.read("model_path", out.modelPath);
  fields.read("model_fingerprint", out.modelFingerprint);
  fields.read("diagnosis", out.diagnosis);
  fields.read("evidence", out.evidence);
  fields.read("plan", out.plan);
  fields.read("options", out.options);
  fields.read("data", out.data);
  fields.read("layer_shifts", out.layerShifts);
  fields.read("device", out.device);
  fields.read("outcome", out.outcome);
  fields.read("message", out.message);
  fields.read("trainable_parameters", out.trainableParameters);
  fields.read("frozen_parameters", out.frozenParameters);
  fields.read("validation_before", out.validationBefore);
  fields.read("test_before", out.testBefore);
  fields.read("validation_after", out.validationAfter);
  fields.read("test_after", out.testAfter);
  fields.read("source_before", out.sourceBefore);
  fields.read("source_after", out.sourceAfter);
  fields.read("validation_recalibrated", out.validationRecalibrated);
  fields.read("search", out.search);
  fields.read("history", out.history);
  fields.read("best_evaluation", out.bestEvaluation);
  fields.read("steps", out.steps);
  fields.read("seconds", out.seconds);
  fields.read("frozen_cache", out.frozenCache);
  fields.read("cache_seconds", out.cacheSeconds);
  fields.read("resumed_epochs", out.resumedEpochs);
}

// ---- equality -------------------------------------------------------------------------------

bool sameNumber(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

namespace {

bool sameNumbers(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!sameNumber(a[i], b[i])) return false;
  }
  return true;
}

}  // namespace

bool operator==(const TrainOptions& a, const TrainOptions& b) {
  return a.optimizer == b.optimizer && sameNumber(a.learningRate, b.learningRate) &&
         sameNumber(a.weightDecay, b.weightDecay) && sameNumber(a.momentum, b.momentum) &&
         a.schedule == b.schedule && sameNumber(a.warmupFraction, b.warmupFraction) &&
         a.batchSize == b.batchSize && a.epochs == b.epochs && a.maxSteps == b.maxSteps &&
         a.loss == b.loss && a.evaluateEverySteps == b.evaluateEverySteps &&
         a.selectBy == b.selectBy && a.patience == b.patience &&
         a.batchNormEval == b.batchNormEval && sameNumber(a.maxSourceDrop, b.maxSourceDrop) &&
         a.seed == b.seed && a.device == b.device && a.precision == b.precision &&
         a.channelsLast == b.channelsLast && a.dataPath == b.dataPath &&
         a.cacheFrozenPart == b.cacheFrozenPart;
}

bool operator==(const FreezePlan& a, const FreezePlan& b) {
  if (a.learningRateScale.size() != b.learningRateScale.size()) return false;
  for (auto i = a.learningRateScale.begin(), j = b.learningRateScale.begin();
       i != a.learningRateScale.end(); ++i, ++j) {
    if (i->first != j->first || !sameNumber(i->second, j->second)) return false;
  }
  return a.strategy == b.strategy && a.trainable == b.trainable && a.explanation == b.explanation &&
         a.batchNorm == b.batchNorm && a.recalibrate == b.recalibrate;
}

bool operator==(const PlanCandidate& a, const PlanCandidate& b) {
  return a.name == b.name && a.origin == b.origin && a.plan == b.plan &&
         sameNumber(a.learningRate, b.learningRate) && a.epochs == b.epochs &&
         sameNumbers(a.validation, b.validation) && sameNumber(a.sourceAfter, b.sourceAfter) &&
         sameNumber(a.seconds, b.seconds) && a.outcome == b.outcome;
}

bool operator==(const PlanSearch& a, const PlanSearch& b) {
  return a.candidates == b.candidates && a.chosen == b.chosen && a.scoreName == b.scoreName &&
         sameNumber(a.validationBefore, b.validationBefore) &&
         sameNumber(a.sourceBefore, b.sourceBefore) &&
         sameNumber(a.maxSourceDrop, b.maxSourceDrop) && sameNumber(a.seconds, b.seconds) &&
         sameNumber(a.fullModelEpochs, b.fullModelEpochs) && a.runs == b.runs &&
         a.validationItems == b.validationItems;
}

bool operator==(const Evaluation& a, const Evaluation& b) {
  return sameNumber(a.loss, b.loss) && sameNumber(a.accuracy, b.accuracy) &&
         sameNumbers(a.perClassAccuracy, b.perClassAccuracy) && a.regression == b.regression &&
         sameNumber(a.r2, b.r2) && sameNumber(a.meanAbsoluteError, b.meanAbsoluteError) &&
         a.items == b.items;
}

bool operator==(const EvaluationPoint& a, const EvaluationPoint& b) {
  return a.epoch == b.epoch && a.step == b.step && sameNumber(a.trainLoss, b.trainLoss) &&
         a.validation == b.validation;
}

bool operator==(const DataRequest& a, const DataRequest& b) {
  return a.source == b.source && a.split == b.split && a.shift == b.shift &&
         a.severity == b.severity && a.seed == b.seed && a.itemShape == b.itemShape &&
         a.classNames == b.classNames && a.regressionTargets == b.regressionTargets;
}

bool operator==(const DataFingerprint& a, const DataFingerprint& b) {
  return a.role == b.role && a.description == b.description && a.items == b.items &&
         a.fingerprint == b.fingerprint;
}

bool operator==(const LayerShift& a, const LayerShift& b) {
  return a.layer == b.layer && sameNumber(a.kl, b.kl) && sameNumber(a.noiseFloor, b.noiseFloor);
}

bool operator==(const RunReport& a, const RunReport& b) {
  return a.format == b.format && a.scalpelVersion == b.scalpelVersion &&
         a.torchVersion == b.torchVersion && a.createdUtc == b.createdUtc &&
         a.modelPath == b.modelPath && a.modelFingerprint == b.modelFingerprint &&
         a.diagnosis == b.diagnosis && a.evidence == b.evidence && a.plan == b.plan &&
         a.options == b.options && a.data == b.data && a.layerShifts == b.layerShifts &&
         a.device == b.device && a.outcome == b.outcome && a.message == b.message &&
         a.trainableParameters == b.trainableParameters &&
         a.frozenParameters == b.frozenParameters && a.validationBefore == b.validationBefore &&
         a.testBefore == b.testBefore && a.validationAfter == b.validationAfter &&
         a.testAfter == b.testAfter && a.sourceBefore == b.sourceBefore &&
         a.sourceAfter == b.sourceAfter && a.validationRecalibrated == b.validationRecalibrated &&
         a.search == b.search && a.history == b.history && a.bestEvaluation == b.bestEvaluation &&
         a.steps == b.steps && sameNumber(a.seconds, b.seconds) && a.frozenCache == b.frozenCache &&
         sameNumber(a.cacheSeconds, b.cacheSeconds) && a.resumedEpochs == b.resumedEpochs;
}

}  // namespace scalpel
