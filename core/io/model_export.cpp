#include "io/model_export.h"

#include <torch/script.h>

#include <fstream>
#include <sstream>

#include "files/atomic_file.h"
#include "io/run_report.h"
#include "model/model_metadata.h"
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
    dropEmpty(extra);
    extra[kRunReportFile] = reportJson;
    std::ostringstream out;
    module.save(out, extra);
    return writeFileAtomically(path, out.str());
  } catch (const std::exception& error) {
    return "exporting to " + path.string() + " failed: " + summariseTorchError(error.what());
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
