#pragma once

// JSON (de)serialisers of the pieces that sessions and run reports share, so both files spell
// them the same way. Keys are snake_case. One reading rule everywhere:
//  - a missing field (or null, except in number fields) keeps its default;
//  - null in a number field reads as NaN: JSON has no NaN or infinity, and nlohmann writes
//    them as null, so a NaN loss saved as null comes back NaN (an infinity too);
//  - a field of the wrong type throws FormatError naming it when reading strictly (sessions), or
//    keeps its default when reading leniently (run reports, which are embedded in models and
//    should open whichever Scalpel wrote them).
// This is the one public header that includes nlohmann/json.

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "analysis/advisor.h"
#include "data/data_request.h"
#include "io/run_report.h"
#include "train/trainer.h"

namespace scalpel {

// A field of the wrong type, e.g. "options.learning_rate should be a number, not a string".
class FormatError : public std::runtime_error {
 public:
  FormatError(std::string field, std::string expected, std::string found);
  // The field's path ("runs[1].report.options.learning_rate"); "" for the value itself.
  const std::string& field() const { return m_field; }
  const std::string& expected() const { return m_expected; }  // "a number"
  const std::string& found() const { return m_found; }        // "a string"
  // The same error seen one level further out: within("options") of "learning_rate" is
  // "options.learning_rate", within("[2]") of "step" is "[2].step".
  FormatError within(const std::string& key) const;

 private:
  std::string m_field, m_expected, m_found;
};

// "a string", "an array", "null" ...: what a value is, for messages.
std::string describeJsonType(const nlohmann::json& json);
// The text of a nlohmann error without its "[json.exception.parse_error.101] " prefix.
std::string jsonErrorText(const std::exception& error);

// ---- writing --------------------------------------------------------------------------------
// Ordered JSON, so files list their fields in a readable order rather than alphabetically.
nlohmann::ordered_json toJson(const TrainOptions& options);
nlohmann::ordered_json toJson(const FreezePlan& plan);
nlohmann::ordered_json toJson(const PlanCandidate& candidate);
nlohmann::ordered_json toJson(const PlanSearch& search);
nlohmann::ordered_json toJson(const Evaluation& evaluation);
nlohmann::ordered_json toJson(const EvaluationPoint& point);
// Also writes "description" (describe()), for people reading the file; it is ignored on reading.
nlohmann::ordered_json toJson(const DataRequest& request);
nlohmann::ordered_json toJson(const DataFingerprint& data);
nlohmann::ordered_json toJson(const LayerShift& shift);
nlohmann::ordered_json toJson(const RunReport& report);

// ---- reading --------------------------------------------------------------------------------
// Fields present in `json` overwrite those of `out`; the others keep their values. Throws
// FormatError (strict) when `json` or one of its fields has the wrong type.
void fromJson(const nlohmann::json& json, TrainOptions& out, bool strict = true);
void fromJson(const nlohmann::json& json, FreezePlan& out, bool strict = true);
void fromJson(const nlohmann::json& json, PlanCandidate& out, bool strict = true);
void fromJson(const nlohmann::json& json, PlanSearch& out, bool strict = true);
void fromJson(const nlohmann::json& json, Evaluation& out, bool strict = true);
void fromJson(const nlohmann::json& json, EvaluationPoint& out, bool strict = true);
void fromJson(const nlohmann::json& json, DataRequest& out, bool strict = true);
void fromJson(const nlohmann::json& json, DataFingerprint& out, bool strict = true);
void fromJson(const nlohmann::json& json, LayerShift& out, bool strict = true);
// Reads every field but `format` (the caller checks that first).
void fromJson(const nlohmann::json& json, RunReport& out, bool strict = true);

// Reads single values under the rule above; structs go to their fromJson().
namespace json_detail {

void readValue(const nlohmann::json& json, double& out, bool strict);
void readValue(const nlohmann::json& json, bool& out, bool strict);
void readValue(const nlohmann::json& json, std::string& out, bool strict);
void readWholeNumber(const nlohmann::json& json, long double low, long double high,
                     long double& out);

template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
void readValue(const nlohmann::json& json, T& out, bool /*strict*/) {
  if (json.is_null()) return;
  long double value = 0;
  readWholeNumber(json, static_cast<long double>(std::numeric_limits<T>::min()),
                  static_cast<long double>(std::numeric_limits<T>::max()), value);
  out = static_cast<T>(value);
}

template <typename T>
auto readValue(const nlohmann::json& json, T& out, bool strict)
    -> decltype(fromJson(json, out, strict)) {
  fromJson(json, out, strict);
}

template <typename T>
void readValue(const nlohmann::json& json, std::vector<T>& out, bool strict) {
  if (json.is_null()) return;
  if (!json.is_array()) throw FormatError({}, "an array", describeJsonType(json));
  std::vector<T> values(json.size());
  for (std::size_t i = 0; i < json.size(); ++i) {
    try {
      readValue(json[i], values[i], strict);
    } catch (const FormatError& error) {
      throw error.within("[" + std::to_string(i) + "]");
    }
  }
  out = std::move(values);
}

template <typename T>
void readValue(const nlohmann::json& json, std::map<std::string, T>& out, bool strict) {
  if (json.is_null()) return;
  if (!json.is_object()) throw FormatError({}, "an object", describeJsonType(json));
  std::map<std::string, T> values;
  for (const auto& [key, value] : json.items()) {
    try {
      readValue(value, values[key], strict);
    } catch (const FormatError& error) {
      throw error.within(key);
    }
  }
  out = std::move(values);
}

}  // namespace json_detail

// The fields of one JSON object, read one by one into a struct's members.
class JsonFields {
 public:
  // Throws FormatError unless `json` is an object.
  JsonFields(const nlohmann::json& json, bool strict);

  template <typename T>
  void read(const char* key, T& out) const {
    const auto it = m_json.find(key);
    if (it == m_json.end()) return;
    T value = out;
    try {
      json_detail::readValue(*it, value, m_strict);
    } catch (const FormatError& error) {
      if (m_strict) throw error.within(key);
      return;  // lenient: keep the default
    }
    out = std::move(value);
  }

 private:
  const nlohmann::json& m_json;
  bool m_strict;
};

// Field-wise equality, for round-trip checks. Numbers compare equal when both are NaN, since
// that is what a NaN written to JSON comes back as.
bool sameNumber(double a, double b);
bool operator==(const TrainOptions& a, const TrainOptions& b);
bool operator==(const FreezePlan& a, const FreezePlan& b);
bool operator==(const PlanCandidate& a, const PlanCandidate& b);
bool operator==(const PlanSearch& a, const PlanSearch& b);
bool operator==(const Evaluation& a, const Evaluation& b);
bool operator==(const EvaluationPoint& a, const EvaluationPoint& b);
bool operator==(const DataRequest& a, const DataRequest& b);
bool operator==(const DataFingerprint& a, const DataFingerprint& b);
bool operator==(const LayerShift& a, const LayerShift& b);
bool operator==(const RunReport& a, const RunReport& b);

}  // namespace scalpel
