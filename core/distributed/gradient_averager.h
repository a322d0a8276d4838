#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/collective.h"

namespace scalpel {

// Averages the gradients of the trainable parameters over all ranks after each backward, as
// DistributedDataParallel does: gradients are copied into flat buckets (in reverse parameter
// order, the order backward produces them) and each full bucket's all-reduce starts at once, in
// the background, while backward goes on; finish() waits for the rest. Only the parameters
// given travel: frozen ones are never sent.
class GradientAverager {
 public:
  GradientAverager(std::shared_ptr<Collective> collective, std::vector<torch::Tensor> parameters,
                   std::size_t bucketBytes = std::size_t(4) << 20);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  // The next backward's gradients are reduced as they appear (other backward passes, such as
  // gradient measurements, are left alone).
  void arm();
  // After that backward: waits for every bucket and leaves the average in each parameter's grad.
  void finish();
  // Gradient bytes all-reduced so far, counted at the calls into c10d.
  std::uint64_t bytesReduced() const;
  std::size_t buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace scalpel
