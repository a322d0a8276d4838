#pragma once

// Torch-facing: include only from core sources, tests and benchmarks, never from the UI.
#include <torch/script.h>

#include <vector>

#include "analysis/channel_moments.h"

namespace scalpel {

// Per-channel moments of one batch from the taps of ActivationTaps::Output::ChannelSums (float32
// [2C + 1]: Σx, Σx², values per channel), which the forward reduced where each module call
// returned: all taps leave the device in one copy, and batches merge in float64. (float32 sums:
// ATen's sums cascade, and var_mean is 4-7× slower on this CPU; the variance error this leaves,
// ~1e-6 relative, is far below any noise floor.)
std::vector<ChannelMoments> momentsFromChannelSums(const std::vector<torch::Tensor>& sums);

}  // namespace scalpel
