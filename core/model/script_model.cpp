#include "model/script_model.h"

#include <caffe2/serialize/inline_container.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "checkpoint/checkpoint_reader.h"
#include "files/zip_check.h"
#include "model/activation_taps.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

namespace fs = std::filesystem;

namespace {

const char* const kSaveHint =
    "open a TorchScript file (torch.jit.script(model).save(\"model.pt\")), a state dict "
    "(torch.save(model.state_dict(), \"model.pth\")) or a .safetensors file";

std::string quoted(const fs::path& path) { return path.filename().string(); }

// A complete zip archive ends with an end-of-central-directory record ("PK\5\6") within its
// last 64 KiB + 22 bytes; a truncated one has lost it.
bool hasZipEndRecord(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const std::streamoff size = in.tellg();
  const std::streamoff tail = std::min<std::streamoff>(size, 65536 + 22);
  std::string bytes(static_cast<size_t>(tail), '\0');
  in.seekg(size - tail);
  if (!in.read(bytes.data(), tail)) return false;
  return bytes.rfind(std::string("PK\x05\x06", 4)) != std::string::npos;
}

// Says what is wrong with a file that is not a loadable model before torch gets to it, so the
// message names the real problem rather than a zip-reader internal.
std::string checkFile(const fs::path& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) {
    return path.string() +
           ": no such file — check the path or choose the model with File ▸ Open Model…";
  }
  if (fs::is_directory(status)) {
    return path.string() +
           " is a folder, not a model file — choose the model file inside it: " + kSaveHint;
  }
  const auto size = fs::file_size(path, error);
  if (error) return path.string() + ": cannot read the file (" + error.message() + ")";
  if (size == 0) {
    return quoted(path) + " is empty (0 bytes) — the save was probably interrupted; " + kSaveHint;
  }
  if (isSafetensorsFile(path)) return {};  // checked as it is read (checkpoint/)
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[4] = {};
  if (!in.read(reinterpret_cast<char*>(magic), 4)) {
    return quoted(path) + " is too short to be a model (" + std::to_string(size) + " bytes) — " +
           kSaveHint;
  }
  if (magic[0] == 0x80 && magic[1] <= 5) {  // a pickle: torch.save before PyTorch 1.6
    return quoted(path) +
           " was written by torch.save() in PyTorch's legacy format (before 1.6), which Scalpel "
           "does not read — load it in Python and save it again with a newer PyTorch: "
           "torch.save(torch.load(\"old.pth\"), \"model.pth\")";
  }
  if (!(magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4)) {
    return quoted(path) + " is not a model file (it is neither a zip archive nor safetensors) — " +
           kSaveHint;
  }
  if (!hasZipEndRecord(path)) {
    return quoted(path) +
           " looks truncated or damaged (the end of its zip archive is missing) — copy it again "
           "or " +
           kSaveHint;
  }
  // LibTorch does not check its entries' checksums, and some damage crashes its parser.
  if (const auto damage = verifyZipChecksums(path); !damage.empty()) {
    return quoted(path) + " is damaged: " + damage + " — copy it again, or " + kSaveHint;
  }
  return {};
}

// torch::jit::load failed on a zip archive: look inside to say why.
std::string explainLoadFailure(const fs::path& path, const std::string& torchMessage) {
  std::vector<std::string> records;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    records = reader.getAllRecords();
  } catch (const std::exception&) {
    // Torch's reader refuses zips that lack its layout (one top folder, a version record).
  }
  const auto has = [&](const std::string& part) {
    return std::any_of(records.begin(), records.end(),
                       [&](const std::string& r) { return r.find(part) != std::string::npos; });
  };
  if (has("data.pkl") && !has("code/")) {
    return quoted(path) +
           " was saved with torch.save(), which stores Python objects, not TorchScript — " +
           kSaveHint;
  }
  if (!has("data.pkl")) {
    return quoted(path) + " is a zip archive but not a TorchScript model — " + kSaveHint;
  }
  return quoted(path) + " could not be loaded as TorchScript (" +
         summariseTorchError(torchMessage) + ") — it may come from a newer PyTorch; " + kSaveHint;
}

std::string checkForward(const torch::jit::Module& module, const fs::path& path) {
  const auto forward = module.find_method("forward");
  if (!forward) return quoted(path) + " has no forward method — " + kSaveHint;
  const auto& arguments = forward->function().getSchema().arguments();
  std::vector<std::string> required;
  for (size_t i = 1; i < arguments.size(); ++i) {  // 0 is self
    if (!arguments[i].default_value()) required.push_back(arguments[i].name());
  }
  const bool oneTensor = required.size() == 1 && arguments.size() > 1 &&
                         arguments[1].type()->kind() == c10::TypeKind::TensorType;
  if (oneTensor) return {};
  std::string list;
  for (size_t i = 1; i < arguments.size(); ++i) {
    list += (i > 1 ? ", " : "") + arguments[i].name() + ": " + arguments[i].type()->repr_str();
  }
  return quoted(path) + "'s forward takes (" + list +
         "), but Scalpel needs forward(x: Tensor) with one input tensor — wrap the model in a "
         "module whose forward takes one tensor, then script and save that";
}

bool readsTraining(const torch::jit::Block* block) {
  for (const torch::jit::Node* node : block->nodes()) {
    if (node->kind() == c10::prim::GetAttr && node->s(c10::attr::name) == "training") return true;
    for (const torch::jit::Block* sub : node->blocks()) {
      if (readsTraining(sub)) return true;
    }
  }
  return false;
}

// torch.jit.trace records one path through forward with `self.training` read as a Python bool,
// so traced graphs never read `training`, while scripted BatchNorm and Dropout always do.
bool looksTraced(const torch::jit::Module& model) {
  bool modeDependent = false;
  for (const auto& item : model.named_modules()) {
    const std::string type = item.value.type()->name() ? item.value.type()->name()->name() : "";
    if (type.find("BatchNorm") != std::string::npos || type.find("Dropout") != std::string::npos) {
      modeDependent = true;
    }
    for (const auto& method : item.value.get_methods()) {
      if (readsTraining(method.graph()->block())) return false;
    }
  }
  return modeDependent;
}

std::int64_t countParameters(const torch::jit::Module& module, bool recurse) {
  std::int64_t total = 0;
  for (const auto& parameter : module.parameters(recurse)) total += parameter.numel();
  return total;
}

torch::jit::Module submodule(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module current = root;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '.')) current = current.attr(part).toModule();
  return current;
}

bool hasTensorAttribute(const torch::jit::Module& module, const char* name) {
  return module.hasattr(name) && module.attr(name).isTensor();
}

// `name` ("auto": CUDA when available, "cpu", "cuda", "cuda:N") as a device that exists here.
// Returns "" or what is wrong.
std::string resolveDevice(const std::string& name, torch::Device& device) {
  try {
    const bool automatic = name == "auto";
    device = torch::Device(automatic ? (torch::cuda::is_available() ? "cuda" : "cpu") : name);
  } catch (const std::exception&) {
    return "unknown device '" + name + "' — use auto, cpu, cuda or cuda:N";
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    return "CUDA was asked for, but this machine has no usable CUDA device — use the CPU";
  }
  if (device.is_cuda() && device.index() >= static_cast<int>(torch::cuda::device_count())) {
    const auto count = torch::cuda::device_count();
    return "there is no GPU " + name + ": this machine has " + std::to_string(count) +
           (count == 1 ? " (cuda:0)" : " (cuda:0 to cuda:" + std::to_string(count - 1) + ")");
  }
  return {};
}

// A library architecture's preprocessing: that of its torchvision weights.
ModelMetadata preprocessingOf(const Architecture& architecture) {
  ModelMetadata metadata;
  metadata.inputShape = architecture.inputShape;
  metadata.mean = architecture.mean;
  metadata.std = architecture.std;
  metadata.resize = architecture.resize;
  metadata.preprocessing = "imagenet";
  metadata.present = true;  // exports and conversions store it
  return metadata;
}

}  // namespace

BatchStream::Options batchOptionsFor(const ModelMetadata& metadata, torch::Device device) {
  BatchStream::Options options;
  options.mean = metadata.mean;
  options.std = metadata.std;
  if (metadata.inputShape.size() == 4) {
    options.fitTo.assign(metadata.inputShape.begin() + 1, metadata.inputShape.end());
  }
  options.resize = metadata.resize;
  options.device = device;
  return options;
}

ScriptModel::~ScriptModel() = default;

BatchStream::Options ScriptModel::batchOptions() const {
  auto options = batchOptionsFor(m_metadata, m_device);
  if (options.fitTo.empty()) {
    if (const auto guess = defaultInputShape(); guess.size() == 4) options.fitTo = {guess[1], 0, 0};
  }
  return options;
}

bool ScriptModel::isOn(const std::string& deviceName) const {
  torch::Device device(torch::kCPU);
  // "cuda" is the current device, cuda:0 here.
  return resolveDevice(deviceName, device).empty() && device.type() == m_device.type() &&
         std::max<int>(0, device.index()) == std::max<int>(0, m_device.index());
}

ModelLoadResult ScriptModel::copy(const std::string& deviceName) const {
  ModelLoadResult result;
  std::unique_ptr<ScriptModel> copied(new ScriptModel());
  if (auto problem = resolveDevice(deviceName, copied->m_device); !problem.empty()) {
    result.error = problem;
    return result;
  }
  // On the source's own device, a deep copy: it shares the source's class types and compiled
  // methods, and with them the graph executors' work, so a copy saved to a file keeps the
  // source's class names and its first forward passes need not profile and optimise the graph
  // again. (Through TorchScript's own format, in memory, each copy took 25 ms and its first
  // forward pass 17 ms on the demo model: 0.9 s of a 5.7 s plan search of 23 short runs.) Without
  // gradients recorded, so that every parameter is a leaf of its own. Module::clone() would make
  // new classes with mangled names (__torch_mangle_N) that end up in every exported file.
  // To another device, through the format: loading maps every tensor there, not only the
  // parameters and buffers Module::to() moves.
  std::stringstream bytes;
  const bool sameDevice = isOn(deviceName);
  {
    std::lock_guard<std::mutex> lock(m_copying);
    torch::NoGradGuard noGrad;
    if (sameDevice)
      copied->m_module = m_module.deepcopy();
    else
      m_module.save(bytes);
  }
  if (!sameDevice) copied->m_module = torch::jit::load(bytes, copied->m_device);
  std::vector<bool> requiresGrad;  // parameters train as they did in the original
  for (const auto& parameter : m_module.parameters())
    requiresGrad.push_back(parameter.requires_grad());
  std::size_t index = 0;
  for (auto parameter : copied->m_module.parameters()) {
    if (index < requiresGrad.size()) parameter.set_requires_grad(requiresGrad[index++]);
  }
  copied->m_path = m_path;
  copied->m_tree = m_tree;
  copied->m_metadata = m_metadata;
  copied->m_referenceJson = m_referenceJson;
  copied->m_warnings = m_warnings;
  copied->m_format = m_format;
  copied->m_notes = m_notes;
  result.model = std::move(copied);
  return result;
}

ModelLoadResult ScriptModel::load(const fs::path& path, const std::string& deviceName,
                                  const std::string& architecture) {
  ModelLoadResult result;
  if (auto problem = checkFile(path); !problem.empty()) {
    result.error = problem;
    return result;
  }
  std::unique_ptr<ScriptModel> model(new ScriptModel());
  model->m_path = path;
  if (auto problem = resolveDevice(deviceName, model->m_device); !problem.empty()) {
    result.error = problem;
    return result;
  }

  torch::jit::ExtraFilesMap extra{{kModelMetadataFile, ""}, {kReferenceProfileFile, ""}};
  if (isCheckpointFile(path)) {
    auto rebuilt = rebuildFromCheckpoint(path, architecture, model->m_device);
    if (!rebuilt.error.empty()) {
      result.error = rebuilt.error;
      result.candidates = rebuilt.candidates;
      return result;
    }
    model->m_module = rebuilt.module;
    model->m_format = rebuilt.format;
    model->m_notes = rebuilt.notes;
    model->m_warnings = rebuilt.warnings;
    model->m_metadata = preprocessingOf(*rebuilt.architecture);
    model->m_metadata.architecture = rebuilt.architecture->name;
  } else {
    try {
      model->m_module = torch::jit::load(path.string(), model->m_device, extra);
    } catch (const std::exception& error) {
      result.error = explainLoadFailure(path, error.what());
      return result;
    }
  }

  if (countParameters(model->m_module, true) == 0) {
    result.error = quoted(path) +
                   " has no trainable parameters — was it saved with torch.jit.freeze? Save the "
                   "model before freezing: torch.jit.script(model).save(\"model.pt\")";
    return result;
  }
  if (auto problem = checkForward(model->m_module, path); !problem.empty()) {
    result.error = problem;
    return result;
  }
  if (looksTraced(model->m_module)) {
    model->m_warnings.push_back(quoted(path) +
                                " looks traced (torch.jit.trace): BatchNorm and Dropout behave as "
                                "they did when it was traced and will not switch between training "
                                "and evaluation — prefer torch.jit.script(model)");
  }
  model->m_referenceJson = extra[kReferenceProfileFile];
  if (const auto& json = extra[kModelMetadataFile]; !json.empty()) {
    if (auto problem = parseModelMetadata(json, model->m_metadata); !problem.empty()) {
      model->m_warnings.push_back(quoted(path) + ": ignoring " + kModelMetadataFile + " (" +
                                  problem + ")");
    }
  }
  try {
    model->m_taps = std::make_unique<ActivationTaps>(model->m_module);
  } catch (const std::exception& error) {
    model->m_warnings.push_back("Scalpel could not follow this model's forward (" +
                                summariseTorchError(error.what()) +
                                "): layers are listed in definition order and cannot be tapped");
  }
  model->buildTree();
  for (const auto& warning : model->m_warnings) logger("core")->warn("{}", warning);
  logger("core")->info("loaded {} on {}: {} modules, {} parameters", path.string(),
                       model->m_device.str(), model->m_tree.size(),
                       model->m_tree.node(0).totalParameters);
  result.model = std::move(model);
  return result;
}

void ScriptModel::buildTree() {
  // First-call position and call count of every module, from the rewritten forward.
  std::map<std::string, int> firstCall;
  std::map<std::string, int> callCount;
  if (m_taps) {
    const auto& calls = m_taps->calls();
    for (size_t i = 0; i < calls.size(); ++i) {
      firstCall.emplace(calls[i].module, static_cast<int>(i));
      ++callCount[calls[i].module];
    }
  }
  std::vector<LayerNode> nodes;
  std::map<std::string, int> indexOf;
  for (const auto& item : m_module.named_modules()) {  // definition order, parents first
    LayerNode node;
    node.name = item.name;
    node.typeName = item.value.type()->name() ? item.value.type()->name()->name() : "?";
    node.ownParameters = countParameters(item.value, false);
    node.totalParameters = countParameters(item.value, true);
    node.hasBatchNormStats = hasTensorAttribute(item.value, "running_mean") &&
                             hasTensorAttribute(item.value, "running_var");
    node.callCount = item.name.empty() ? 1 : callCount[item.name];
    node.freshHead = !m_freshHead.empty() && item.name == m_freshHead;
    const auto dot = item.name.rfind('.');
    if (!item.name.empty()) {
      node.parent = indexOf.at(dot == std::string::npos ? "" : item.name.substr(0, dot));
      node.depth = nodes[static_cast<size_t>(node.parent)].depth + 1;
      nodes[static_cast<size_t>(node.parent)].children.push_back(static_cast<int>(nodes.size()));
    }
    indexOf[item.name] = static_cast<int>(nodes.size());
    nodes.push_back(std::move(node));
  }
  // Children in execution order; modules never called keep their definition order, last.
  const auto position = [&](int index) {
    const auto it = firstCall.find(nodes[static_cast<size_t>(index)].name);
    return it == firstCall.end() ? std::numeric_limits<int>::max() : it->second;
  };
  for (auto& node : nodes) {
    std::stable_sort(node.children.begin(), node.children.end(),
                     [&](int a, int b) { return position(a) < position(b); });
  }
  m_tree = LayerTree(std::move(nodes));
}

std::string ScriptModel::replaceHead(const std::vector<std::string>& classNames) {
  if (classNames.empty()) return "a new head needs at least one class";
  // The last layer with weights that runs: the classifier's output layer.
  std::string head;
  for (int index : m_tree.preorder()) {
    const auto& node = m_tree.node(index);
    if (node.callCount > 0 && node.children.empty() && node.ownParameters > 0) head = node.name;
  }
  const auto index = m_tree.find(head);
  const std::string type = index ? m_tree.node(*index).typeName : "";
  auto module = head.empty() ? m_module : submodule(m_module, head);
  const bool linear = type == "Linear";
  const bool pointwise = type == "Conv2d" && hasTensorAttribute(module, "weight") &&
                         module.attr("weight").toTensor().dim() == 4 &&
                         module.attr("weight").toTensor().size(2) == 1 &&
                         module.attr("weight").toTensor().size(3) == 1;
  if (head.empty() || !(linear || pointwise)) {
    return "the model's last layer" +
           (head.empty() ? std::string() : " (" + head + ", " + type + ")") +
           " is not a Linear layer, so Scalpel cannot give it a new head — add one in Python "
           "and script the model again";
  }
  const auto old = module.attr("weight").toTensor();
  auto shape = old.sizes().vec();
  shape[0] = static_cast<std::int64_t>(classNames.size());
  const auto fanIn = old.numel() / old.size(0);
  // nn.Linear's and nn.Conv2d's own initialisation: U(-1/√fan_in, 1/√fan_in), seeded so the same
  // choice gives the same head.
  const double bound = 1.0 / std::sqrt(static_cast<double>(fanIn));
  auto generator = at::detail::createCPUGenerator(0);
  const auto fresh = [&](std::vector<std::int64_t> size) {
    auto values = (torch::rand(size, generator) * 2 - 1) * bound;
    return values.to(old.device()).set_requires_grad(true);
  };
  torch::NoGradGuard noGrad;
  module.setattr("weight", fresh(shape));
  if (hasTensorAttribute(module, "bias")) module.setattr("bias", fresh({shape[0]}));
  for (const char* field : {"out_features", "out_channels"}) {
    // Linear's out_features is a TorchScript constant, unchangeable (and never read).
    if (module.type()->hasAttribute(field) && module.attr(field).isInt()) {
      module.setattr(field, shape[0]);
    }
  }
  m_freshHead = head;
  m_metadata.classNames = classNames;
  m_notes.push_back("its last layer, " + head + ", was replaced by a new head with " +
                    std::to_string(classNames.size()) + " outputs");
  buildTree();
  return {};
}

std::vector<std::int64_t> ScriptModel::defaultInputShape() const {
  if (!m_metadata.inputShape.empty()) return m_metadata.inputShape;
  // The first layer that runs tells how many channels or features the input has.
  for (int index : m_tree.preorder()) {
    const auto& node = m_tree.node(index);
    if (node.callCount == 0 || !node.children.empty()) continue;
    // From the weight, not from attributes such as in_channels: traced models do not keep those.
    const auto module = submodule(m_module, node.name);
    if (!hasTensorAttribute(module, "weight")) return {};
    const auto weight = module.attr("weight").toTensor();
    if (node.typeName == "Conv2d" && weight.dim() == 4) {
      const auto groups = module.hasattr("groups") ? module.attr("groups").toInt() : 1;
      return {1, weight.size(1) * groups, 224, 224};
    }
    if (node.typeName == "Linear" && weight.dim() == 2) return {1, weight.size(1)};
    return {};
  }
  return {};
}

std::string ScriptModel::probe(const std::vector<std::int64_t>& inputShape) {
  if (!m_taps) return "this model's forward could not be rewritten, so output shapes are unknown";
  if (inputShape.empty()) return "no input shape is known for this model";
  for (int i = 0; i < m_tree.size(); ++i) m_tree.setOutputShape(i, {});
  const bool wasTraining = m_module.is_training();
  try {
    torch::NoGradGuard noGrad;
    m_module.eval();
    const auto input = torch::zeros(inputShape, torch::TensorOptions().device(m_device));
    const auto result = m_taps->run(input);
    m_module.train(wasTraining);
    const auto& tapped = m_taps->tappedCalls();
    for (size_t i = 0; i < tapped.size(); ++i) {
      if (tapped[i].call != 0) continue;
      if (const auto index = m_tree.find(tapped[i].module)) {
        m_tree.setOutputShape(*index, result.taps[i].sizes().vec());
      }
    }
    if (result.output.isTensor()) m_tree.setOutputShape(0, result.output.toTensor().sizes().vec());
    return {};
  } catch (const std::exception& error) {
    m_module.train(wasTraining);
    return "the model does not accept an input of shape " + formatShape(inputShape) + " (" +
           summariseTorchError(error.what()) + ")";
  }
}

}  // namespace scalpel
