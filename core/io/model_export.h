#pragma once

// Writing tuned models out, with the run report inside them. Torch-free header.

#include <filesystem>
#include <string>

namespace scalpel {

class LoadedModel;

// Writes `modelBytes` (a TorchScript file in memory: TrainResult::tunedModel) to `path`
// atomically, with `reportJson` embedded as the extra file kRunReportFile beside the extra files
// it already carries (preprocessing, reference profile). Python reads the report with
// torch.jit.load(path, _extra_files={"scalpel/report.json": ""}). Returns "" or what went wrong
// (the previous file at `path`, if any, is then untouched). A `path` ending in .pth or
// .safetensors gets the weights alone instead (checkpoint/checkpoint_writer.h), for Python's
// load_state_dict; the report then lives only in the report folder beside it.
std::string exportTunedModel(const std::string& modelBytes, const std::string& reportJson,
                             const std::filesystem::path& path);

// Writes the model as it was opened (a checkpoint rebuilt into its architecture, a new head, a
// chosen preprocessing) as a TorchScript file with that preprocessing stored, atomically. Python
// loads it with torch.jit.load. Returns "" or what went wrong.
std::string saveAsTorchScript(const LoadedModel& model, const std::filesystem::path& path);

// Reads the run report embedded in a model file into `reportJson` ("" when it has none).
// Returns "" or what is wrong with the file.
std::string readEmbeddedReport(const std::filesystem::path& path, std::string& reportJson);

}  // namespace scalpel
