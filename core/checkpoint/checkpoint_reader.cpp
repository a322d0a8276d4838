#include "checkpoint/checkpoint_reader.h"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "checkpoint/pickle_reader.h"
#include "checkpoint/safetensors_format.h"
#include "checkpoint/tensor_types.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace fs = std::filesystem;

namespace {

const char* const kScriptHint =
    "script the model in Python and open that file instead: "
    "torch.jit.script(model).save(\"model.pt\")";

std::string quoted(const fs::path& path) { return path.filename().string(); }

bool hasExtension(const fs::path& path, const char* extension) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == extension;
}

// A safetensors file starts with its header's length (little-endian) and then '{'.
bool looksLikeSafetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char bytes[9] = {};
  if (!in.read(reinterpret_cast<char*>(bytes), 9)) return false;
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[i];
  return bytes[8] == '{' && length > 1 && length < (std::uint64_t(1) << 32);
}

std::string joinFew(const std::vector<std::string>& names, std::size_t few = 3) {
  std::string text;
  for (std::size_t i = 0; i < std::min(few, names.size()); ++i) {
    text += (i ? ", " : "") + names[i];
  }
  if (names.size() > few) text += " and " + std::to_string(names.size() - few) + " more";
  return text;
}

// A signature's dtype (architecture_library.h), in safetensors' names.
std::string signatureDtype(torch::ScalarType type) { return namesOf(type).safetensors; }

// The state dict inside a pickle: the whole of it, or one entry of a training checkpoint.
bool isTensorDict(const PickleValue& value) {
  if (value.kind != PickleValue::Kind::Dict || value.entries.empty()) return false;
  std::size_t tensors = 0;
  for (const auto& [key, item] : value.entries) {
    if (key->kind != PickleValue::Kind::String) return false;
    if (item->kind == PickleValue::Kind::Tensor) ++tensors;
  }
  return tensors > 0 && tensors * 10 >= value.entries.size() * 9;
}

std::string wholeModuleError(const fs::path& path, const PickleValue& object) {
  return quoted(path) + " holds a whole pickled Python model (" + object.text +
         "), which only Python can rebuild — save its weights instead, torch.save(model."
         "state_dict(), \"model.pth\"), or " +
         kScriptHint;
}

const PickleValue* findStateDict(const PickleValue& root, const fs::path& path, std::string& where,
                                 std::string& error) {
  if (root.kind == PickleValue::Kind::Object) {
    error = wholeModuleError(path, root);
    return nullptr;
  }
  if (isTensorDict(root)) return &root;
  if (root.kind == PickleValue::Kind::Dict) {
    for (const char* name : {"state_dict", "model_state_dict", "model", "net", "module", "network",
                             "weights", "params", "ema"}) {
      const PickleValue* entry = root.find(name);
      if (!entry) continue;
      if (isTensorDict(*entry)) {
        where = std::string("its \"") + name + "\" entry";
        return entry;
      }
      if (entry->kind == PickleValue::Kind::Object) {
        error = wholeModuleError(path, *entry);
        return nullptr;
      }
    }
    const PickleValue* largest = nullptr;
    std::string largestName;
    for (const auto& [key, item] : root.entries) {
      if (isTensorDict(*item) && (!largest || item->entries.size() > largest->entries.size())) {
        largest = item.get();
        largestName = key->kind == PickleValue::Kind::String ? key->text : "?";
      }
    }
    if (largest) {
      where = "its \"" + largestName + "\" entry";
      return largest;
    }
  }
  std::string what = "no tensors by name";
  if (root.kind == PickleValue::Kind::List || root.kind == PickleValue::Kind::Tuple) {
    what = "a list of " + std::to_string(root.items.size()) + " values, not a state dict";
  }
  error = quoted(path) + " was written by torch.save() but holds " + what +
          " — save the model's weights with torch.save(model.state_dict(), \"model.pth\"), or " +
          kScriptHint;
  return nullptr;
}

void readTorchSave(const fs::path& path, CheckpointContents& contents) {
  contents.format = "state dict (torch.save)";
  caffe2::serialize::PyTorchStreamReader reader(path.string());
  const auto [pickleData, pickleSize] = reader.getRecord("data.pkl");
  const std::string pickle(static_cast<const char*>(pickleData.get()), pickleSize);
  PickleValuePtr root;
  try {
    root = parsePickle(pickle);
  } catch (const PickleError& error) {
    contents.error = quoted(path) + ": its torch.save() contents cannot be read (" + error.what() +
                     ") — save the weights again with torch.save(model."
                     "state_dict(), \"model.pth\"), or " +
                     kScriptHint;
    return;
  }
  const PickleValue* dict = findStateDict(*root, path, contents.where, contents.error);
  if (!dict) return;
  std::map<std::string, torch::Tensor> storages;  // each record read once, shared by views
  for (const auto& [key, item] : dict->entries) {
    if (item->kind != PickleValue::Kind::Tensor) continue;
    const PickleTensor& t = item->tensor;
    const auto type = scalarTypeNamed(t.dtype);
    auto& storage = storages[t.storageKey];
    if (!storage.defined()) {
      const std::string record = "data/" + t.storageKey;
      if (!reader.hasRecord(record)) {
        throw std::runtime_error("the storage of " + key->text + " (" + record + ") is missing");
      }
      auto [data, size] = reader.getRecord(record);
      const auto element = static_cast<std::size_t>(c10::elementSize(type));
      storage = torch::empty({static_cast<std::int64_t>(size / element)}, type);
      std::memcpy(storage.data_ptr(), data.get(), size / element * element);
    }
    // Bounds: the furthest element the view reaches must lie inside the storage.
    std::int64_t last = t.storageOffset;
    bool empty = false;
    if (t.shape.size() != t.stride.size()) throw std::runtime_error(key->text + ": bad strides");
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] < 0 || t.stride[d] < 0) throw std::runtime_error(key->text + ": bad shape");
      if (t.shape[d] == 0)
        empty = true;
      else
        last += (t.shape[d] - 1) * t.stride[d];
    }
    if (!empty && (t.storageOffset < 0 || last >= storage.numel())) {
      throw std::runtime_error(key->text + " reaches past the end of its storage");
    }
    contents.weights.emplace_back(
        key->text, empty ? torch::empty(t.shape, type)
                         : storage.as_strided(t.shape, t.stride, t.storageOffset).clone());
  }
}

void readSafetensors(const fs::path& path, CheckpointContents& contents) {
  contents.format = "safetensors";
  std::ifstream in(path, std::ios::binary);
  SafetensorsHeader header;
  const auto size = fs::file_size(path);
  if (auto problem = parseSafetensorsHeader(in, size, header); !problem.empty()) {
    contents.error = quoted(path) + ": " + problem;
    return;
  }
  for (const auto& entry : header.entries) {
    auto tensor = torch::empty(entry.shape, scalarTypeNamed(entry.dtype));
    in.seekg(static_cast<std::streamoff>(header.dataOffset + entry.begin));
    if (!in.read(static_cast<char*>(tensor.data_ptr()),
                 static_cast<std::streamsize>(entry.end - entry.begin))) {
      contents.error = quoted(path) + " is truncated (" + entry.name +
                       " lies past its end) — copy the file again";
      return;
    }
    contents.weights.emplace_back(entry.name, std::move(tensor));
  }
}

std::vector<TensorSignature> signatures(const StateDict& weights, std::size_t stripComponents) {
  std::vector<TensorSignature> keys;
  for (const auto& [name, tensor] : weights) {
    std::size_t at = 0;
    for (std::size_t i = 0; i < stripComponents && at != std::string::npos; ++i) {
      at = name.find('.', at);
      if (at != std::string::npos) ++at;
    }
    keys.push_back({at == std::string::npos ? name : name.substr(at), tensor.sizes().vec(),
                    signatureDtype(tensor.scalar_type())});
  }
  return keys;
}

// Wrappers put their own names before the model's: DataParallel "module.", Lightning "model.".
// How many leading components every key shares (at most 3).
std::size_t sharedLeadingComponents(const StateDict& weights) {
  std::size_t shared = 0;
  while (shared < 3) {
    std::string first;
    for (const auto& [name, tensor] : weights) {
      std::size_t at = 0;
      for (std::size_t i = 0; i <= shared && at != std::string::npos; ++i) {
        at = name.find('.', at);
        if (at != std::string::npos && i < shared) ++at;
      }
      if (at == std::string::npos) return shared;
      const auto prefix = name.substr(0, at);
      if (first.empty()) first = prefix;
      if (prefix != first) return shared;
    }
    ++shared;
  }
  return shared;
}

torch::jit::Module submodule(torch::jit::Module module, const std::string& path) {
  std::size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    if (dot == std::string::npos) return module;
    module = module.attr(path.substr(start, dot - start)).toModule();
    start = dot + 1;
  }
}

std::string lastComponent(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

void setTensor(torch::jit::Module& root, const std::string& key, torch::Tensor value) {
  auto owner = submodule(root, key);
  const auto name = lastComponent(key);
  const auto type = owner.type();
  const bool parameter =
      type->hasAttribute(name) && type->is_parameter(type->getAttributeSlot(name));
  value.set_requires_grad(parameter);
  owner.setattr(name, value);
}

}  // namespace

bool isSafetensorsFile(const fs::path& path) {
  return hasExtension(path, ".safetensors") || looksLikeSafetensors(path);
}

bool isCheckpointFile(const fs::path& path) {
  if (isSafetensorsFile(path)) return true;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    return reader.hasRecord("data.pkl") && !reader.hasRecord("constants.pkl");
  } catch (const std::exception&) {
    return false;
  }
}

CheckpointContents readCheckpoint(const fs::path& path) {
  CheckpointContents contents;
  try {
    if (isSafetensorsFile(path)) {
      readSafetensors(path, contents);
    } else {
      readTorchSave(path, contents);
    }
    if (contents.error.empty() && contents.weights.empty()) {
      contents.error = quoted(path) +
                       " holds no tensors — choose the file with the model's "
                       "weights, or " +
                       kScriptHint;
    }
  } catch (const std::exception& error) {
    contents.weights.clear();
    contents.error = quoted(path) + " cannot be read as a checkpoint (" +
                     summariseTorchError(error.what()) + ") — copy it again, or " + kScriptHint;
  }
  return contents;
}

RebuiltModel rebuildFromCheckpoint(const fs::path& path, const std::string& architecture,
                                   const torch::Device& device,
                                   const ArchitectureLibrary& library) {
  RebuiltModel rebuilt;
  auto contents = readCheckpoint(path);
  rebuilt.format = contents.format;
  if (!contents.error.empty()) {
    rebuilt.error = contents.error;
    return rebuilt;
  }
  if (library.architectures().empty()) {
    rebuilt.error =
        quoted(path) + " holds only weights, and " +
        (library.error().empty() ? "Scalpel's architecture library is empty" : library.error());
    return rebuilt;
  }
  // Each wrapper prefix the keys share, removed one component at a time, until one fits.
  Recognition recognition;
  std::size_t strip = 0;
  const auto shared = sharedLeadingComponents(contents.weights);
  for (std::size_t s = 0; s <= shared; ++s) {
    auto attempt = library.recognise(signatures(contents.weights, s));
    if (!attempt.fits.empty() || s == 0 || attempt.sharedFraction > recognition.sharedFraction) {
      recognition = std::move(attempt);
      strip = s;
    }
    if (!recognition.fits.empty()) break;
  }
  auto fits = recognition.fits;
  if (!architecture.empty()) {
    fits.erase(std::remove_if(
                   fits.begin(), fits.end(),
                   [&](const Recognition::Fit& f) { return f.architecture->name != architecture; }),
               fits.end());
    if (fits.empty()) {
      rebuilt.error =
          quoted(path) + " does not fit the architecture " + architecture +
          (library.find(architecture) ? "" : " (Scalpel's library has no such name)") +
          (recognition.fits.empty() ? std::string()
                                    : " — it fits " + recognition.fits.front().architecture->name);
      return rebuilt;
    }
  }
  if (fits.empty()) {
    const auto* closest = recognition.closest;
    if (closest && recognition.sharedFraction >= 0.5) {
      std::string problems;
      if (!recognition.missing.empty()) problems += "missing " + joinFew(recognition.missing);
      if (!recognition.unexpected.empty()) {
        problems += std::string(problems.empty() ? "" : "; ") + "unexpected " +
                    joinFew(recognition.unexpected);
      }
      if (!recognition.misshaped.empty()) {
        problems += std::string(problems.empty() ? "" : "; ") + "mis-shaped " +
                    joinFew(recognition.misshaped, 2);
      }
      rebuilt.error = quoted(path) + " looks like torchvision's " + closest->name +
                      ", but its keys do not match: " + problems +
                      " — save the weights of an unchanged torchvision " + closest->name +
                      " (torch.save(model.state_dict(), \"model.pth\")), or " + kScriptHint;
    } else {
      std::vector<std::string> names;
      for (const auto& [name, tensor] : contents.weights) names.push_back(name);
      rebuilt.error = quoted(path) +
                      " holds the weights of an architecture that is not in "
                      "Scalpel's library of torchvision classification models (" +
                      std::to_string(names.size()) + " tensors: " + joinFew(names) + ") — " +
                      kScriptHint;
    }
    return rebuilt;
  }
  if (fits.size() > 1) {
    for (const auto& fit : fits) rebuilt.candidates.push_back(fit.architecture->name);
    rebuilt.error = quoted(path) + " fits several architectures (" +
                    joinFew(rebuilt.candidates, 8) +
                    ") — choose one (scalpel-cli: --architecture NAME)";
    return rebuilt;
  }
  const auto& fit = fits.front();
  rebuilt.architecture = fit.architecture;
  rebuilt.classes = fit.classes;
  if (strip > 0) {
    const auto& first = contents.weights.front().first;
    std::size_t at = 0;
    for (std::size_t i = 0; i < strip; ++i) at = first.find('.', at) + 1;
    rebuilt.notes.push_back("removed the prefix \"" + first.substr(0, at) + "\" from every key");
  }
  if (!contents.where.empty()) rebuilt.notes.push_back("the weights are " + contents.where);
  if (!recognition.ignored.empty()) {
    rebuilt.warnings.push_back(quoted(path) + ": ignoring " +
                               std::to_string(recognition.ignored.size()) +
                               " tensors of auxiliary heads that inference does not use (" +
                               joinFew(recognition.ignored, 2) + ")");
  }
  try {
    rebuilt.module = torch::jit::load(fit.architecture->file, torch::kCPU);
    const auto keys = signatures(contents.weights, strip);
    const std::set<std::string> ignored(recognition.ignored.begin(), recognition.ignored.end());
    std::set<std::string> widened;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (ignored.count(keys[i].name)) continue;
      auto tensor = contents.weights[i].second;
      if (tensor.is_floating_point() && tensor.scalar_type() != torch::kFloat32) {
        widened.insert(keys[i].dtype == "F16"    ? "half"
                       : keys[i].dtype == "BF16" ? "bfloat16"
                                                 : "float64");
        tensor = tensor.to(torch::kFloat32);
      }
      setTensor(rebuilt.module, keys[i].name, tensor);
    }
    if (!widened.empty()) {
      rebuilt.notes.push_back("its " + *widened.begin() +
                              " weights were widened to float32 for analysis and training");
    }
    // What the checkpoint left out (only optional step counters) must own its memory: the
    // library's tensors are views of a single element.
    for (const auto& item : rebuilt.module.named_buffers()) {
      if (item.value.numel() > 1 && item.value.stride(0) == 0) {
        setTensor(rebuilt.module, item.name, item.value.contiguous().clone());
      }
    }
    // A head of another size: its module's own record of the size follows the weights.
    if (fit.classes != fit.architecture->classes) {
      for (const auto& key : fit.architecture->head) {
        auto owner = submodule(rebuilt.module, key);
        for (const char* field : {"out_features", "out_channels"}) {
          // Linear's out_features is a TorchScript constant, unchangeable (and never read).
          if (owner.type()->hasAttribute(field) && owner.attr(field).isInt()) {
            owner.setattr(field, fit.classes);
          }
        }
      }
      if (rebuilt.module.type()->hasAttribute("num_classes") &&
          rebuilt.module.attr("num_classes").isInt()) {
        rebuilt.module.setattr("num_classes", fit.classes);
      }
    }
    rebuilt.module.to(device);
  } catch (const std::exception& error) {
    rebuilt.error = quoted(path) + ": rebuilding " + fit.architecture->name + " failed (" +
                    summariseTorchError(error.what()) + ") — " + kScriptHint;
    rebuilt.architecture = nullptr;
  }
  return rebuilt;
}

}  // namespace scalpel
