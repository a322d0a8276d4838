#pragma once

// Torch-facing: include only from core sources, tests and benchmarks, never from the UI.
#include <torch/script.h>

#include <vector>

#include "analysis/channel_moments.h"

namespace scalpel {

// Per-channel moments of one batch of activations per tensor: channel = dim 1 of [N, C, ...], the
// last dim of [N, T, C] token tensors, the features of [N, C].
//
// Each tensor is reduced on its device to per-channel Σx and Σx² (float32 sums: ATen sums
// cascade, and var_mean is 4-7× slower on CPU here; the variance error this leaves, ~1e-6
// relative, is far below any noise floor), each along contiguous runs, Σx² as a squared 2-norm
// (no squared copy). All taps' sums leave the device in one copy, and batches merge in float64.
std::vector<ChannelMoments> activationMoments(const std::vector<torch::Tensor>& activations);

}  // namespace scalpel
