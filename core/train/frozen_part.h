#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace scalpel {

// The part of a model's forward that depends only on its input and on frozen parameters, split
// off so that it runs once per item: surgical fine-tuning trains a few layers, and the rest of the
// network, in front of them, computes the same values every epoch.
//
// The cut is found in the TorchScript graph, not by module names: forward is inlined, and every
// value that reads a trainable parameter, directly or through what it depends on, is trainable;
// the others are frozen. The frontier is the frozen values the trainable computation reads: more
// than one tensor where skip connections cross the cut (a ResNet's block input and its residual).
// prefix() computes them; suffix() is the rest of forward, from them. Frozen layers after a
// trainable block stay in the suffix: they run every step, and gradients flow through them.
class FrozenPart {
 public:
  // The split of `model`'s forward when training the parameters named in `trainable` (as in
  // named_parameters()) with the modules in `trainMode` in training mode (every module but the
  // frozen BatchNorms). Null, with `why` saying so, when nothing frozen comes first or when the
  // frozen part would not compute the same values every epoch (active dropout or other
  // randomness, a layer that behaves otherwise in training, a size passed on).
  static std::unique_ptr<FrozenPart> split(const torch::jit::Module& model,
                                           const std::set<std::string>& trainable,
                                           const std::set<std::string>& trainMode,
                                           std::string& why);
  ~FrozenPart();

  // The frontier values of a batch (run in eval mode, without gradients, by the caller).
  std::vector<torch::Tensor> prefix(const torch::Tensor& inputs) const;
  // The model's outputs from frontier values of a batch.
  torch::jit::IValue suffix(const std::vector<torch::Tensor>& frontier) const;
  std::size_t frontierSize() const { return m_frontier; }
  // The modules computed entirely in the frozen part, in execution order, for messages
  // ("stem … layer2").
  const std::vector<std::string>& cachedModules() const { return m_modules; }
  std::string describe() const;
  // How the prefix computes the frontier, as text (the graph's nodes it needs, attribute names
  // included), and the current values of the attributes they read (parameters, buffers, flags):
  // two parts with equal texts and equal values compute the same frontier from the same items.
  std::string signature() const;
  std::vector<std::pair<std::string, c10::IValue>> attributesRead() const;

 private:
  FrozenPart() = default;
  struct Impl;
  std::unique_ptr<Impl> m_impl;
  std::size_t m_frontier = 0;
  std::vector<std::string> m_modules;
};

}  // namespace scalpel
