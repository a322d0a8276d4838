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

DataLoadResult parseCsv(const std::string& text, const std::string& name,
                        const CsvOptions& options) {
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
    return DataLoadResult::failure(
        name + ":" + std::to_string(rows.front().first) +
        ": one column only — a CSV needs feature columns and a label column (is the delimiter '" +
        std::string(1, options.delimiter) + "'?)");
  }

  // Which columns are predicted (the label, or the regression targets), and is the first row a
  // header?
  const bool regression = !options.targetColumns.empty();
  if (regression && !options.labelColumn.empty()) {
    return DataLoadResult::failure(
        name +
        ": both a label column and regression targets are named — a CSV is read for classification "
        "(a label column) or for regression (target columns), not both");
  }
  std::vector<std::size_t> predicted{columns - 1};
  bool header = false;
  const auto& first = rows.front().second;
  const auto columnNamed = [&](const std::string& wanted, std::size_t& index) {
    const auto it = std::find(first.begin(), first.end(), wanted);
    index = static_cast<std::size_t>(it - first.begin());
    return it != first.end();
  };
  const auto noSuchColumn = [&](const std::string& wanted) {
    return DataLoadResult::failure(name + ":" + std::to_string(rows.front().first) +
                                   ": no column named '" + wanted +
                                   "' in the header — name one of its columns" +
                                   (regression ? "" : ", or leave it out to use the last"));
  };
  if (regression) {
    predicted.clear();
    for (const auto& wanted : options.targetColumns) {
      std::size_t index = 0;
      if (!columnNamed(wanted, index)) return noSuchColumn(wanted);
      if (std::find(predicted.begin(), predicted.end(), index) == predicted.end())
        predicted.push_back(index);
    }
    if (predicted.size() == columns)
      return DataLoadResult::failure(
          name + ": every column is a target — leave at least one feature column");
    header = true;
  } else if (!options.labelColumn.empty()) {
    if (!columnNamed(options.labelColumn, predicted.front()))
      return noSuchColumn(options.labelColumn);
    header = true;
  } else {
    double value = 0;
    for (std::size_t c = 0; c < columns; ++c) {
      if (c != predicted.front() && !parseNumber(first[c], value)) header = true;
    }
  }
  std::vector<bool> isPredicted(columns, false);
  for (auto c : predicted) isPredicted[c] = true;
  std::vector<std::string> columnNames;
  if (header) {
    columnNames = first;
    rows.erase(rows.begin());
  } else {
    for (std::size_t c = 0; c < columns; ++c)
      columnNames.push_back("column " + std::to_string(c + 1));
  }
  if (rows.empty()) return DataLoadResult::failure(name + ": a header but no data rows");

  Dataset dataset;
  dataset.name = name;
  const std::size_t features = columns - predicted.size();
  dataset.itemShape = {static_cast<std::int64_t>(features)};
  dataset.values.reserve(rows.size() * features);
  if (regression) {
    for (auto c : predicted) dataset.targetNames.push_back(columnNames[c]);
    dataset.targets.reserve(rows.size() * predicted.size());
  }
  std::vector<std::string> problems;
  std::size_t badRows = 0;
  std::vector<std::string> labelTexts;
  for (const auto& [line, fields] : rows) {
    std::string problem;
    if (fields.size() != columns) {
      problem = "line " + std::to_string(line) + ": " + std::to_string(fields.size()) +
                " fields, expected " + std::to_string(columns);
    } else {
      for (std::size_t c = 0; c < columns && problem.empty(); ++c) {
        if (isPredicted[c] && !regression) continue;  // the class label: any text
        double value = 0;
        if (!parseNumber(fields[c], value)) {
          problem = "line " + std::to_string(line) + ": " + columnNames[c] + " is '" + fields[c] +
                    "', not a number";
        } else if (!isPredicted[c]) {
          dataset.values.push_back(static_cast<float>(value));
        }
      }
      if (problem.empty() && !regression && fields[predicted.front()].empty())
        problem = "line " + std::to_string(line) + ": the label is empty";
    }
    if (!problem.empty()) {
      ++badRows;
      if (problems.size() < 5) problems.push_back(problem);
      continue;
    }
    if (regression) {
      for (auto c : predicted)
        dataset.targets.push_back(static_cast<float>(std::strtod(fields[c].c_str(), nullptr)));
    } else {
      labelTexts.push_back(fields[predicted.front()]);
    }
  }
  if (badRows) {
    std::string message =
        name + ": " + std::to_string(badRows) + " bad row" + (badRows > 1 ? "s" : "") + " — ";
    for (std::size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    if (badRows > problems.size()) message += "; …";
    return DataLoadResult::failure(message + ". Fix or remove them and open the file again");
  }

  DataLoadResult result;
  if (regression) {
    std::string targets;
    for (const auto& target : dataset.targetNames)
      targets += (targets.empty() ? "'" : ", '") + target + "'";
    result.notes.push_back(name + ": " + std::to_string(dataset.size()) + " rows, " +
                           std::to_string(features) + " features, regression targets " + targets);
    result.dataset = std::move(dataset);
    return result;
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
  result.notes.push_back(
      name + ": " + std::to_string(dataset.size()) + " rows, " + std::to_string(features) +
      " features, label column '" + columnNames[predicted.front()] + "', " +
      std::to_string(dataset.classNames.size()) + " classes" + (header ? "" : " (no header)"));
  result.dataset = std::move(dataset);
  return result;
}

DataLoadResult readCsv(const std::filesystem::path& path, const CsvOptions& options) {
  std::string text;
  if (auto error = readMaybeGzipped(path, text); !error.empty())
    return DataLoadResult::failure(error);
  return parseCsv(text, path.string(), options);
}

}  // namespace scalpel
