#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <string>
#include <vector>

namespace scalpel {

// Adam, AdamW and SGD with momentum, each step applied to a parameter group's tensors with
// ATen's multi-tensor (_foreach_) kernels: a handful of launches per group instead of several per
// tensor, as Python's optimisers do by default on CUDA. The arithmetic is that of torch::optim's
// versions (Adam's L2 weight decay, AdamW's decoupled decay, SGD's momentum without dampening).
class ForeachOptimizer {
 public:
  struct Settings {
    std::string kind = "adam";  // "adam", "adamw" or "sgd"
    double weightDecay = 0;
    double momentum = 0.9;  // sgd
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  };

  explicit ForeachOptimizer(Settings settings) : m_settings(std::move(settings)) {}
  void addGroup(std::vector<torch::Tensor> parameters, double learningRate);
  std::size_t groups() const { return m_groups.size(); }
  double learningRate(std::size_t group) const { return m_groups.at(group).learningRate; }
  void setLearningRate(std::size_t group, double lr) { m_groups.at(group).learningRate = lr; }
  // Drops every gradient (set to undefined, as Python's zero_grad(set_to_none=True)).
  void zeroGrad();
  // One step on every parameter that has a gradient.
  void step();

  // Each group's moments (or momentum buffers) and step count: what a resumed run goes on from.
  struct GroupState {
    std::vector<torch::Tensor> first, second;
    std::int64_t steps = 0;
  };
  // Copies in host memory.
  std::vector<GroupState> state() const;
  // Takes state() of an optimiser with the same groups of the same shapes; false otherwise.
  bool setState(const std::vector<GroupState>& state);

 private:
  struct Group {
    std::vector<torch::Tensor> parameters;
    std::vector<torch::Tensor> first, second;  // Adam's moments, or SGD's momentum buffer
    double learningRate = 0;
    std::int64_t steps = 0;
  };
  void stepAdam(Group& group, const std::vector<std::size_t>& active,
                const std::vector<torch::Tensor>& grads);
  void stepSgd(Group& group, const std::vector<std::size_t>& active,
               const std::vector<torch::Tensor>& grads);

  Settings m_settings;
  std::vector<Group> m_groups;
};

}  // namespace scalpel
