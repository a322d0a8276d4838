#include "data/csv_reader.h"

#include "data/idx_reader.h"  // readMaybeGzipped

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace scalpel {

namespace {

// Splits one line into fields; double quotes protect delimiters ("a,b") and escape themselves ("").
std::vector<std::string> splitFields(const std::string& line, char delimiter) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == delimiter) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  for (auto& field : fields) {  // trim spaces and a Windows line end
    const auto first = field.find_first_not_of(" \t\r");
    const auto last = field.find_last_not_of(" \t\r");
    field = first == std::string::npos ? std::string() : field.substr(first, last - first + 1);
  }
  return fields;
}

bool parseNumber(const std::string& text, double& value) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno == 0 && std::isfinite(value);
}

bool isInteger(const std::string& text) {
  double value = 0;
  return parseNumber(text, value) && value == std::floor(value) && value >= 0 && value < 1e6 &&
         text.find_first_of(".eE") == std::string::npos;
}

}  // namespace

DataLoadResult parseCsv(const std::string& text, const std::string& name, const CsvOptions& options) {
  std::vector<std::pair<int, std::vector<std::string>>> rows;  // (line number, fields)
  {
    std::istringstream in(text);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
      rows.emplace_back(number, splitFields(line, options.delimiter));
    }
  }
  if (rows.empty()) return DataLoadResult::failure(name + ": no rows — the file is empty");
  const std::size_t columns = rows.front().second.size();
  if (columns < 2) {
    return DataLoadResult::failure(name + ":" + std::to_string(rows.front().first) + ": one column only — a CSV needs feature columns and a label column (is the delimiter '" + std::string(1, options.delimiter) + "'?)");
  }

  // Which column is the label, and is the first row a header?
  std::size_t labelIndex = columns - 1;
  bool header = false;
  const auto& first = rows.front().second;
  if (!options.labelColumn.empty()) {
    const auto it = std::find(first.begin(), first.end(), options.labelColumn);
    if (it == first.end()) {
      return DataLoadResult::failure(name + ":" + std::to_string(rows.front().first) + ": no column named '" + options.labelColumn + "' in the header — name one of its columns, or leave it out to use the last");
    }
    labelIndex = static_cast<std::size_t>(it - first.begin());
    header = true;
  } else {
    double value = 0;
    for (std::size_t c = 0; c < columns; ++c) {
      if (c != labelIndex && !parseNumber(first[c], value)) header = true;
    }
  }
  std::vector<std::string> columnNames;
  if (header) {
    columnNames = first;
    rows.erase(rows.begin());
  } else {
    for (std::size_t c = 0; c < columns; ++c) columnNames.push_back("column " + std::to_string(c + 1));
  }
  if (rows.empty()) return DataLoadResult::failure(name + ": a header but no data rows");

  Dataset dataset;
  dataset.name = name;
  dataset.itemShape = {static_cast<std::int64_t>(columns - 1)};
  dataset.values.reserve(rows.size() * (columns - 1));
  std::vector<std::string> problems;
  std::size_t badRows = 0;
  std::vector<std::string> labelTexts;
  for (const auto& [line, fields] : rows) {
    std::string problem;
    if (fields.size() != columns) {
      problem = "line " + std::to_string(line) + ": " + std::to_string(fields.size()) + " fields, expected " + std::to_string(columns);
    } else {
      for (std::size_t c = 0; c < columns && problem.empty(); ++c) {
        if (c == labelIndex) continue;
        double value = 0;
        if (!parseNumber(fields[c], value)) {
          problem = "line " + std::to_string(line) + ": " + columnNames[c] + " is '" + fields[c] + "', not a number";
        } else {
          dataset.values.push_back(static_cast<float>(value));
        }
      }
      if (problem.empty() && fields[labelIndex].empty()) problem = "line " + std::to_string(line) + ": the label is empty";
    }
    if (!problem.empty()) {
      ++badRows;
      if (problems.size() < 5) problems.push_back(problem);
      continue;
    }
    labelTexts.push_back(fields[labelIndex]);
  }
  if (badRows) {
    std::string message = name + ": " + std::to_string(badRows) + " bad row" + (badRows > 1 ? "s" : "") + " — ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    if (badRows > problems.size()) message += "; …";
    return DataLoadResult::failure(message + ". Fix or remove them and open the file again");
  }

  const bool integerLabels = std::all_of(labelTexts.begin(), labelTexts.end(), isInteger);
  if (integerLabels) {
    int maxLabel = 0;
    for (const auto& text : labelTexts) {
      dataset.labels.push_back(std::atoi(text.c_str()));
      maxLabel = std::max(maxLabel, dataset.labels.back());
    }
    for (int c = 0; c <= maxLabel; ++c) dataset.classNames.push_back(std::to_string(c));
  } else {
    const std::set<std::string> names(labelTexts.begin(), labelTexts.end());
    dataset.classNames.assign(names.begin(), names.end());
    std::map<std::string, int> index;
    for (const auto& n : dataset.classNames) index.emplace(n, static_cast<int>(index.size()));
    for (const auto& text : labelTexts) dataset.labels.push_back(index.at(text));
  }
  DataLoadResult result;
  result.notes.push_back(name + ": " + std::to_string(dataset.size()) + " rows, " + std::to_string(columns - 1) + " features, label column '" + columnNames[labelIndex] + "', " + std::to_string(dataset.classNames.size()) + " classes" + (header ? "" : " (no header)"));
  result.dataset = std::move(dataset);
  return result;
}

DataLoadResult readCsv(const std::filesystem::path& path, const CsvOptions& options) {
  std::string text;
  if (auto error = readMaybeGzipped(path, text); !error.empty()) return DataLoadResult::failure(error);
  return parseCsv(text, path.string(), options);
}

}  // namespace scalpel
