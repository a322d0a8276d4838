#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
// Opens the files training scripts write — torch.save() of a state dict (.pth, .pt, .ckpt, also
// DataParallel's, Lightning's and half or bfloat16 ones) and .safetensors — and rebuilds the
// model from Scalpel's architecture library (checkpoint/architecture_library.h).
#include <torch/script.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/architecture_library.h"

namespace scalpel {

using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// Whether `path` holds weights only (a torch.save archive without TorchScript code, or
// safetensors), so the model must be rebuilt from the library rather than torch::jit::load-ed.
bool isCheckpointFile(const std::filesystem::path& path);
// A .safetensors file, or one that starts as safetensors do.
bool isSafetensorsFile(const std::filesystem::path& path);

struct CheckpointContents {
  StateDict weights;   // as stored (dtypes too), wrapper prefixes not yet removed
  std::string format;  // "state dict (torch.save)" or "safetensors"
  std::string where;   // inside a dict: e.g. "its \"state_dict\" entry" (empty: the whole file)
  std::string error;   // "<file> …: what is wrong — what to do"
};
// Reads the tensors of a checkpoint. Never throws.
CheckpointContents readCheckpoint(const std::filesystem::path& path);

struct RebuiltModel {
  torch::jit::Module module;
  const Architecture* architecture = nullptr;  // null when error is set
  std::int64_t classes = 0;
  std::string format;
  std::vector<std::string> notes;       // what was done (a prefix removed, half weights widened)
  std::vector<std::string> warnings;    // what the user should know (keys dropped)
  std::vector<std::string> candidates;  // when several architectures fit and none was chosen
  std::string error;
};
// Reads `path`, recognises its architecture from the keys and shapes (or takes `architecture`
// when one is named: it must fit too) and loads the library's file with those weights in
// float32 on `device`. Never throws.
RebuiltModel rebuildFromCheckpoint(
    const std::filesystem::path& path, const std::string& architecture, const torch::Device& device,
    const ArchitectureLibrary& library = ArchitectureLibrary::standard());

}  // namespace scalpel
