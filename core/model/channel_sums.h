#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

namespace scalpel {

// Per-channel Σx and Σx² of one activation and the number of values per channel, as a float64
// [2C + 1] tensor on the activation's device: channel = dim 1 of [N, C, ...] (and of [N, C]
// features), the last dim of [N, T, C] tokens; a tensor of fewer than two dims is one channel.
//
// Also a TorchScript operator, scalpel::channel_sums(Tensor x) -> Tensor, which ActivationTaps
// inserts where each tapped module call returns: one node per tap, so the analysis forward pays
// one call instead of the dozen small ops a scripted reduction costs (the demo's 36 taps of a
// 6 ms forward made that overhead the analysis' largest cost on the CPU). On the CPU one pass
// reads each value once (both sums together, float lanes flushed into float64 every few
// thousand values); on CUDA it is ATen's reductions. Not differentiable: statistics only.
torch::Tensor channelSums(const torch::Tensor& activation);

// The operator's symbol for graph rewriting; calling it also links in its registration.
c10::Symbol channelSumsOperator();

}  // namespace scalpel
