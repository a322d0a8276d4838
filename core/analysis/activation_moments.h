#pragma once

// Torch-facing: include only from core sources, tests and benchmarks, never from the UI.
#include <torch/script.h>

#include <vector>

#include "analysis/channel_moments.h"

namespace scalpel {

// Per-channel moments of one batch from the taps of ActivationTaps::Output::ChannelSums (float64
// [2C + 1]: Σx, Σx², values per channel; see model/channel_sums.h), which the forward reduced
// where each module call returned: all taps leave the device in one copy, and batches merge in
// float64.
std::vector<ChannelMoments> momentsFromChannelSums(const std::vector<torch::Tensor>& sums);

}  // namespace scalpel
