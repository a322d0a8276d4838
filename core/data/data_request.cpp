#include "data/data_request.h"

#include "data/data_source.h"
#include "data/shifts.h"

namespace scalpel {

std::string DataRequest::describe() const {
  std::string text = source == "fashion-mnist" ? "fashion-mnist/" + split : source;
  for (std::size_t i = 0; i < regressionTargets.size(); ++i)
    text += (i ? ", " : " → ") + regressionTargets[i];
  if (shift.empty()) return text;
  const ShiftInfo* info = findShift(shift);
  text += " + " + (info ? info->name : shift);
  if (info && info->usesSeverity) text += " (severity " + std::to_string(severity) + ")";
  return text;
}

std::string DataSummary::labelling() const {
  if (targetNames.empty()) return std::to_string(classNames.size()) + " classes";
  std::string text = "regression on ";
  for (std::size_t i = 0; i < targetNames.size(); ++i) text += (i ? ", " : "") + targetNames[i];
  return text;
}

void loadRequestedData(const DataRequest& request, Dataset& data, DataSummary& summary) {
  summary = DataSummary();
  summary.description = request.describe();
  try {
    auto loaded = openDataSource(request.source, request.split,
                                 ImageFolderOptions{request.itemShape, request.classNames},
                                 request.regressionTargets);
    if (!loaded) {
      summary.error = loaded.error;
      return;
    }
    summary.warnings = loaded.warnings;
    summary.notes = loaded.notes;
    Dataset clean = std::move(*loaded.dataset);
    Dataset shifted;
    if (!request.shift.empty()) {
      auto result = applyShift(clean, request.shift, request.severity, request.seed);
      if (!result) {
        summary.error = result.error;
        return;
      }
      summary.notes.insert(summary.notes.end(), result.notes.begin(), result.notes.end());
      shifted = std::move(*result.dataset);
    }
    const Dataset& final = request.shift.empty() ? clean : shifted;
    if (final.isImage() && final.size() > 0) {
      std::vector<std::size_t> items;
      const std::size_t count = std::min<std::size_t>(5, final.size());  // fits the details pane
      for (std::size_t i = 0; i < count; ++i) items.push_back(i * final.size() / count);
      std::vector<const Dataset*> rows{&clean};
      if (!request.shift.empty() && shifted.size() == clean.size()) rows.push_back(&shifted);
      std::string error;
      summary.preview = renderPreviewGrid(rows, items, 2, error);
    }
    summary.items = final.size();
    summary.itemShape = final.itemShape;
    summary.classNames = final.classNames;
    summary.classCounts = final.classCounts();
    summary.targetNames = final.targetNames;
    data = request.shift.empty() ? std::move(clean) : std::move(shifted);
    summary.ok = true;
  } catch (const std::exception& error) {
    summary.error = summary.description + ": " + error.what();
  }
}

}  // namespace scalpel
