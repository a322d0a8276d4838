#include "train/foreach_optimizer.h"

#include <cmath>

namespace scalpel {

namespace {

std::vector<torch::Tensor> pick(const std::vector<torch::Tensor>& all,
                                const std::vector<std::size_t>& active) {
  std::vector<torch::Tensor> chosen;
  chosen.reserve(active.size());
  for (auto i : active) chosen.push_back(all[i]);
  return chosen;
}

// A copy in host memory (a copy even when the tensor is there already).
torch::Tensor hostCopy(const torch::Tensor& tensor) {
  return tensor.detach().to(tensor.options().device(torch::kCPU), /*non_blocking=*/false,
                            /*copy=*/true);
}

}  // namespace

void ForeachOptimizer::addGroup(std::vector<torch::Tensor> parameters, double learningRate) {
  Group group;
  group.parameters = std::move(parameters);
  group.learningRate = learningRate;
  torch::NoGradGuard noGrad;
  for (const auto& p : group.parameters) {
    group.first.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    if (m_settings.kind != "sgd")
      group.second.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
  }
  m_groups.push_back(std::move(group));
}

std::vector<ForeachOptimizer::GroupState> ForeachOptimizer::state() const {
  torch::NoGradGuard noGrad;
  std::vector<GroupState> state;
  for (const auto& group : m_groups) {
    GroupState saved;
    saved.steps = group.steps;
    for (const auto& t : group.first) saved.first.push_back(hostCopy(t));
    for (const auto& t : group.second) saved.second.push_back(hostCopy(t));
    state.push_back(std::move(saved));
  }
  return state;
}

bool ForeachOptimizer::setState(const std::vector<GroupState>& state) {
  if (state.size() != m_groups.size()) return false;
  const auto fits = [](const std::vector<torch::Tensor>& to,
                       const std::vector<torch::Tensor>& from) {
    if (to.size() != from.size()) return false;
    for (std::size_t i = 0; i < to.size(); ++i) {
      if (!to[i].sizes().equals(from[i].sizes())) return false;
    }
    return true;
  };
  for (std::size_t g = 0; g < m_groups.size(); ++g) {
    if (!fits(m_groups[g].first, state[g].first) || !fits(m_groups[g].second, state[g].second))
      return false;
  }
  torch::NoGradGuard noGrad;
  for (std::size_t g = 0; g < m_groups.size(); ++g) {
    auto& group = m_groups[g];
    group.steps = state[g].steps;
    for (std::size_t i = 0; i < group.first.size(); ++i) group.first[i].copy_(state[g].first[i]);
    for (std::size_t i = 0; i < group.second.size(); ++i) group.second[i].copy_(state[g].second[i]);
  }
  return true;
}

void ForeachOptimizer::zeroGrad() {
  for (auto& group : m_groups) {
    for (auto& p : group.parameters) p.mutable_grad() = torch::Tensor();
  }
}

void ForeachOptimizer::step() {
  torch::NoGradGuard noGrad;
  for (auto& group : m_groups) {
    std::vector<std::size_t> active;
    std::vector<torch::Tensor> grads;
    for (std::size_t i = 0; i < group.parameters.size(); ++i) {
      if (!group.parameters[i].grad().defined()) continue;
      active.push_back(i);
      grads.push_back(group.parameters[i].grad());
    }
    if (active.empty()) continue;
    ++group.steps;
    if (m_settings.kind == "sgd") {
      stepSgd(group, active, grads);
    } else {
      stepAdam(group, active, grads);
    }
  }
}

void ForeachOptimizer::stepAdam(Group& group, const std::vector<std::size_t>& active,
                                const std::vector<torch::Tensor>& gradients) {
  const auto params = pick(group.parameters, active);
  const auto first = pick(group.first, active);
  const auto second = pick(group.second, active);
  const double lr = group.learningRate;
  const double wd = m_settings.weightDecay;
  std::vector<torch::Tensor> grads = gradients;
  if (wd != 0) {
    if (m_settings.kind == "adamw") {
      at::_foreach_mul_(params, 1 - lr * wd);
    } else {
      grads = at::_foreach_add(grads, params, wd);
    }
  }
  at::_foreach_mul_(first, m_settings.beta1);
  at::_foreach_add_(first, grads, 1 - m_settings.beta1);
  at::_foreach_mul_(second, m_settings.beta2);
  at::_foreach_addcmul_(second, grads, grads, 1 - m_settings.beta2);
  const double correction1 = 1 - std::pow(m_settings.beta1, static_cast<double>(group.steps));
  const double correction2 = 1 - std::pow(m_settings.beta2, static_cast<double>(group.steps));
  auto denominator = at::_foreach_sqrt(second);
  at::_foreach_div_(denominator, std::sqrt(correction2));
  at::_foreach_add_(denominator, m_settings.eps);
  at::_foreach_addcdiv_(params, first, denominator, -lr / correction1);
}

void ForeachOptimizer::stepSgd(Group& group, const std::vector<std::size_t>& active,
                               const std::vector<torch::Tensor>& gradients) {
  const auto params = pick(group.parameters, active);
  std::vector<torch::Tensor> updates = gradients;
  if (m_settings.weightDecay != 0)
    updates = at::_foreach_add(updates, params, m_settings.weightDecay);
  if (m_settings.momentum != 0) {
    const auto buffers = pick(group.first, active);
    // torch::optim's first step copies the gradient into the buffer: momentum × 0 + gradient.
    at::_foreach_mul_(buffers, group.steps == 1 ? 0.0 : m_settings.momentum);
    at::_foreach_add_(buffers, updates);
    updates = buffers;
  }
  at::_foreach_add_(params, updates, -group.learningRate);
}

}  // namespace scalpel
