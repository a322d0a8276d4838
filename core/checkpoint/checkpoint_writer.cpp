#include "checkpoint/checkpoint_writer.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "checkpoint/architecture_library.h"
#include "checkpoint/pickle_writer.h"
#include "checkpoint/safetensors_format.h"
#include "checkpoint/tensor_types.h"
#include "files/atomic_file.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace {

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;  // contiguous, on the CPU
};

// The module's state dict: the library architecture's keys in its order, else every parameter
// and buffer by its dotted name.
std::vector<NamedTensor> stateDict(const torch::jit::Module& module,
                                   const std::string& architecture) {
  std::map<std::string, torch::Tensor> byName;
  for (const auto& item : module.named_parameters()) byName[item.name] = item.value;
  for (const auto& item : module.named_buffers()) byName[item.name] = item.value;
  std::vector<NamedTensor> entries;
  const auto add = [&](const std::string& name, const torch::Tensor& tensor) {
    entries.push_back({name, tensor.detach().to(torch::kCPU).contiguous()});
  };
  if (const auto* known = ArchitectureLibrary::standard().find(architecture)) {
    for (const auto& key : known->keys) {
      const auto it = byName.find(key.name);
      if (it == byName.end()) throw std::runtime_error("the model has no " + key.name);
      add(key.name, it->second);
    }
    return entries;
  }
  for (const auto& item : module.named_parameters()) add(item.name, item.value);
  for (const auto& item : module.named_buffers()) add(item.name, item.value);
  return entries;
}

std::string bytesOf(const torch::Tensor& tensor) {
  return std::string(static_cast<const char*>(tensor.data_ptr()),
                     static_cast<std::size_t>(tensor.numel()) * tensor.element_size());
}

std::string torchSaveBytes(const std::vector<NamedTensor>& entries) {
  std::vector<StateDictEntry> records;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& t = entries[i].tensor;
    records.push_back({entries[i].name, namesOf(t.scalar_type()).storage, t.sizes().vec(),
                       std::to_string(i), t.numel()});
  }
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  const auto pickle = writeStateDictPickle(records);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto bytes = bytesOf(entries[i].tensor);
    writer.writeRecord("data/" + std::to_string(i), bytes.data(), bytes.size());
  }
  writer.writeEndOfFile();
  return out;
}

std::string safetensorsBytes(const std::vector<NamedTensor>& entries,
                             const std::string& metadataJson) {
  std::vector<SafetensorsEntry> header;
  std::string data;
  for (const auto& [name, tensor] : entries) {
    SafetensorsEntry entry{name, namesOf(tensor.scalar_type()).safetensors, tensor.sizes().vec()};
    entry.begin = data.size();
    data += bytesOf(tensor);
    entry.end = data.size();
    header.push_back(std::move(entry));
  }
  std::map<std::string, std::string> metadata{{"format", "pt"}};
  if (!metadataJson.empty()) metadata["scalpel.model"] = metadataJson;
  return safetensorsHeaderBytes(header, metadata) + data;
}

}  // namespace

bool weightsFormatFor(const std::filesystem::path& path, WeightsFormat& format) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (ext == ".safetensors") {
    format = WeightsFormat::Safetensors;
    return true;
  }
  if (ext == ".pth" || ext == ".ckpt" || ext == ".bin") {
    format = WeightsFormat::StateDict;
    return true;
  }
  return false;
}

std::string exportWeights(const std::string& modelBytes, const std::filesystem::path& path,
                          WeightsFormat format, const std::string& architecture,
                          const std::string& metadataJson) {
  try {
    std::istringstream in(modelBytes);
    const auto module = torch::jit::load(in, torch::kCPU);
    const auto entries = stateDict(module, architecture);
    if (format == WeightsFormat::Safetensors) {
      return writeFileAtomically(path, safetensorsBytes(entries, metadataJson));
    }
    if (auto problem = writeFileAtomically(path, torchSaveBytes(entries)); !problem.empty()) {
      return problem;
    }
    if (metadataJson.empty()) return {};
    return writeFileAtomically(path.string() + ".json", metadataJson);
  } catch (const std::exception& error) {
    return path.filename().string() + ": the weights could not be written (" +
           summariseTorchError(error.what()) + ")";
  }
}

}  // namespace scalpel
