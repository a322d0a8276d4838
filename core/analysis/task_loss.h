#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <string>

namespace scalpel {

// The loss of a model's outputs against a batch's targets (Batch::targets), averaged over the
// batch. Float targets are a regression: mean squared error, the outputs taken as [B, T] (a model
// with one output per item may give [B]). Class labels: `kind` "cross-entropy", or "mse" against
// their one-hot vectors. Shared by training, evaluation and the gradient metrics, so all three
// measure the same thing.
inline torch::Tensor taskLoss(const std::string& kind, const torch::Tensor& outputs,
                              const torch::Tensor& targets) {
  if (targets.is_floating_point())
    return at::mse_loss(outputs.reshape(targets.sizes()), targets.to(outputs.dtype()));
  if (kind == "mse")
    return at::mse_loss(outputs, at::one_hot(targets, outputs.size(1)).to(outputs.dtype()));
  return at::cross_entropy_loss(outputs, targets);
}

}  // namespace scalpel
