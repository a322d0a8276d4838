#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace scalpel {

// One forward call of a named module, in the order the model executes them.
struct ModuleCall {
  std::string module;     // dotted path as in named_modules()
  int call = 0;           // 0 for the first call of this module in one forward pass, 1 for the next
  std::string typeName;   // e.g. "Conv2d"
  bool tappable = false;  // its output (or the first tensor of a tuple output) can be tapped
  std::string whyNot;     // when not tappable, why (e.g. "called inside a loop")

  // "layer1.0.relu" for the first call, "layer1.0.relu#1" for the second.
  std::string label() const;
};

// Taps the output of any module at any depth of an unmodified TorchScript model.
//
// A copy of `forward` is inlined call by call (so the value each module call returns is known
// exactly), every tapped value that the forward later writes to is cloned at the moment its
// module call returns (in-place ops such as ReLU(inplace=True) or `out += identity` would
// otherwise change it; values nothing writes to are returned as they are), branches on
// constant module attributes are folded (e.g. `if self.use_res_connect`), and the copy returns
// (output, tap 1, tap 2, ...). The model's own methods are never modified.
class ActivationTaps {
 public:
  // What each tap returns. Activations: the tensor itself. ChannelSums: reduced inside the
  // forward by one scalpel::channel_sums call where the module call returns (no copy, while the
  // activation is still in cache, and before any in-place op; a value several calls return with
  // nothing run in between is reduced once): channelSums() of that activation, a float64
  // [2C + 1] tensor of per-channel Σx, per-channel Σx² and the values per channel.
  enum class Output { Activations, ChannelSums };

  struct Result {
    torch::jit::IValue output;          // what forward returns
    std::vector<torch::Tensor> taps;    // one per tapped call, in the order of tappedCalls()
    std::vector<torch::Tensor> inputs;  // one per input-tapped call, in the order of inputCalls()
  };

  // Taps every tappable module call, or only the calls of the named modules when `only` is
  // non-empty; and the (first) input of every call of the modules in `inputsOf` — a BatchNorm's
  // input is what its running statistics describe. Throws std::runtime_error when the forward
  // graph cannot be rewritten.
  explicit ActivationTaps(const torch::jit::Module& model,
                          const std::vector<std::string>& only = {},
                          const std::vector<std::string>& inputsOf = {},
                          Output output = Output::Activations);
  ~ActivationTaps();
  ActivationTaps(ActivationTaps&&) noexcept;
  ActivationTaps& operator=(ActivationTaps&&) noexcept;

  // Every module forward call in execution order (pre-order: a module before its children).
  const std::vector<ModuleCall>& calls() const { return m_calls; }
  // The calls whose outputs run() returns, in that order.
  const std::vector<ModuleCall>& tappedCalls() const { return m_tapped; }
  // The calls whose inputs run() returns, in that order.
  const std::vector<ModuleCall>& inputCalls() const { return m_inputTapped; }
  // Runs the rewritten forward on `input` with the model's current train/eval mode.
  Result run(const torch::Tensor& input) const;
  // The rewritten graph, for diagnostics.
  std::string graphText() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
  std::vector<ModuleCall> m_calls;
  std::vector<ModuleCall> m_tapped;
  std::vector<ModuleCall> m_inputTapped;
};

}  // namespace scalpel
