#pragma once

// Torch-free header: writes a model's weights as the files Python pipelines load with
// model.load_state_dict(): a torch.save() state dict (.pth) or .safetensors.

#include <filesystem>
#include <string>

namespace scalpel {

enum class WeightsFormat { StateDict, Safetensors };

// The format a file name asks for: .pth/.ckpt/.bin → StateDict, .safetensors → Safetensors;
// false for anything else (a TorchScript .pt).
bool weightsFormatFor(const std::filesystem::path& path, WeightsFormat& format);

// Writes the weights of `modelBytes` (a TorchScript file in memory) to `path` atomically, under
// the names and in the order of the library architecture `architecture` when one is named (so
// torchvision's model of that name loads them strictly), else under the module's own names.
// `metadataJson` (preprocessing, class names) goes into safetensors' __metadata__ as
// "scalpel.model", and beside a .pth as PATH.json. Returns "" or what went wrong.
std::string exportWeights(const std::string& modelBytes, const std::filesystem::path& path,
                          WeightsFormat format, const std::string& architecture,
                          const std::string& metadataJson);

}  // namespace scalpel
