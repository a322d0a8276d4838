#include "io/model_export.h"

#include <torch/script.h>

#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint_writer.h"
#include "files/atomic_file.h"
#include "io/run_report.h"
#include "model/loaded_model.h"
#include "model/model_metadata.h"
#include "model/script_model.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

// Every extra file Scalpel writes: torch reads back only the names it is asked for.
torch::jit::ExtraFilesMap scalpelExtraFiles() {
  return {{kModelMetadataFile, ""}, {kReferenceProfileFile, ""}, {kRunReportFile, ""}};
}

void dropEmpty(torch::jit::ExtraFilesMap& files) {
  for (auto it = files.begin(); it != files.end();)
    it = it->second.empty() ? files.erase(it) : std::next(it);
}

}  // namespace

std::string exportTunedModel(const std::string& modelBytes, const std::string& reportJson,
                             const std::filesystem::path& path) {
  try {
    std::istringstream in(modelBytes);
    auto extra = scalpelExtraFiles();
    auto module = torch::jit::load(in, torch::kCPU, extra);
    WeightsFormat format;
    if (weightsFormatFor(path, format)) {  // weights only, under the architecture's own names
      ModelMetadata metadata;
      parseModelMetadata(extra[kModelMetadataFile], metadata);  // none: the module's names
      return exportWeights(modelBytes, path, format, metadata.architecture,
                           extra[kModelMetadataFile]);
    }
    dropEmpty(extra);
    extra[kRunReportFile] = reportJson;
    std::ostringstream out;
    module.save(out, extra);
    return writeFileAtomically(path, out.str());
  } catch (const std::exception& error) {
    return "exporting to " + path.string() + " failed: " + summariseTorchError(error.what());
  }
}

std::string saveAsTorchScript(const LoadedModel& model, const std::filesystem::path& path) {
  try {
    const ScriptModel& script = model.script();
    torch::jit::ExtraFilesMap extra{{kModelMetadataFile, modelMetadataToJson(script.metadata())}};
    if (!script.referenceJson().empty()) extra[kReferenceProfileFile] = script.referenceJson();
    std::ostringstream out;
    script.module().save(out, extra);
    return writeFileAtomically(path, out.str());
  } catch (const std::exception& error) {
    return "writing " + path.string() + " failed: " + summariseTorchError(error.what());
  }
}

std::string readEmbeddedReport(const std::filesystem::path& path, std::string& reportJson) {
  reportJson.clear();
  try {
    auto extra = scalpelExtraFiles();
    torch::jit::load(path.string(), torch::kCPU, extra);
    reportJson = extra[kRunReportFile];
    return "";
  } catch (const std::exception& error) {
    return path.string() +
           " is not a TorchScript model Scalpel can read: " + summariseTorchError(error.what());
  }
}

}  // namespace scalpel
