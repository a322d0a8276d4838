#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/batch_stream.h"
#include "model/layer_tree.h"
#include "model/model_metadata.h"

namespace scalpel {

class ActivationTaps;
class ScriptModel;

// Batches as a model with this preprocessing takes them, on `device`: images fitted to its input
// shape (channels, resize and crop), normalised with its mean and std.
BatchStream::Options batchOptionsFor(const ModelMetadata& metadata, torch::Device device);

// A load either gives a model or says what is wrong and what to do about it.
struct ModelLoadResult {
  std::unique_ptr<ScriptModel> model;
  std::string error;  // set when model is null: "<file>: what is wrong — what to do"
  // A checkpoint that several architectures fit: their names (choose one and load again).
  std::vector<std::string> candidates;
  explicit operator bool() const { return model != nullptr; }
};

// A TorchScript model loaded for Scalpel: the module, its layer tree in execution order, the
// preprocessing stored with it, and activation taps for every module call. A checkpoint that
// holds only weights (checkpoint/checkpoint_reader.h) is rebuilt into its library architecture
// first, and is a TorchScript model from then on.
class ScriptModel {
 public:
  // `device` is "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
  // `architecture` chooses among the library's architectures when a checkpoint fits several.
  static ModelLoadResult load(const std::filesystem::path& path, const std::string& device = "cpu",
                              const std::string& architecture = {});
  ~ScriptModel();
  // A deep copy, with parameters and buffers of its own, on `device` (as in load()): for a stage
  // that changes the model's flags or weights (gradients, training), so the loaded model stays as
  // it was for the next. It keeps the tree, metadata and stored reference; not the taps. On this
  // model's own device it shares this model's classes and compiled methods (so nothing may
  // redefine a copy's class: change attribute values only).
  // Thread-safe: the sweep copies one model from several threads. No file is read.
  ModelLoadResult copy(const std::string& device) const;
  // Whether it already is on `device` (as in load(): "auto" means CUDA when available).
  bool isOn(const std::string& device) const;

  const std::filesystem::path& path() const { return m_path; }
  torch::jit::Module& module() { return m_module; }
  const torch::jit::Module& module() const { return m_module; }
  const torch::Device& device() const { return m_device; }
  const LayerTree& tree() const { return m_tree; }
  LayerTree& tree() { return m_tree; }
  const ModelMetadata& metadata() const { return m_metadata; }
  // The source reference profile stored with the model (JSON; empty when none): see
  // analysis/reference_profile.h.
  const std::string& referenceJson() const { return m_referenceJson; }
  // Things the user should know that do not stop the load (a traced model, bad metadata).
  const std::vector<std::string>& warnings() const { return m_warnings; }
  // What the file was ("TorchScript", "state dict (torch.save)", "safetensors") and what the load
  // did to it (a wrapper prefix removed, half weights widened).
  const std::string& format() const { return m_format; }
  const std::vector<std::string>& notes() const { return m_notes; }
  // Taps on every tappable module call; null when the forward graph could not be rewritten
  // (then a warning says so and layers are in definition order).
  const ActivationTaps* taps() const { return m_taps.get(); }

  // Batches for this model (batchOptionsFor its metadata and device); a model that stores no
  // input shape still gets images with the channels its first convolution takes.
  BatchStream::Options batchOptions() const;
  // Preprocessing in place of what the file stores (a user's choice of preset).
  void setMetadata(ModelMetadata metadata) { m_metadata = std::move(metadata); }
  // Replaces the classifier's last layer — the last Linear that runs, or a last 1×1 convolution
  // (SqueezeNet) — by a freshly initialised one with an output per class, and names them.
  // Returns "" or why there is none to replace.
  std::string replaceHead(const std::vector<std::string>& classNames);

  // Runs one eval-mode forward on zeros of `inputShape` and records every module's output shape.
  // Returns "" or what went wrong (e.g. the shape does not fit the model).
  std::string probe(const std::vector<std::int64_t>& inputShape);
  // The input shape stored with the model, else a guess from its first layer (Conv2d: C×224×224,
  // Linear: in_features), else empty.
  std::vector<std::int64_t> defaultInputShape() const;

 private:
  ScriptModel() = default;
  void buildTree();

  std::filesystem::path m_path;
  torch::jit::Module m_module;
  torch::Device m_device{torch::kCPU};
  LayerTree m_tree;
  ModelMetadata m_metadata;
  std::string m_referenceJson;
  std::vector<std::string> m_warnings;
  std::string m_format = "TorchScript";
  std::string m_freshHead;  // the module replaceHead() made, if any
  std::vector<std::string> m_notes;
  std::unique_ptr<ActivationTaps> m_taps;
  mutable std::mutex m_copying;  // one copy at a time reads the module
};

}  // namespace scalpel
