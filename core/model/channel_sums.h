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

// channelSums() by ATen's reductions: its path off the CPU, where launches dominate (one
// reduction per sum). Exposed so that tests check that path against the CPU pass on any machine.
torch::Tensor channelSumsByAten(const torch::Tensor& activation);

// channelSums() of a BatchNorm's output, from those of its input (channelSums() of it), without
// reading the output: per channel the layer is y = a·x + b with a = weight / √(var + eps) and
// b = bias − a·mean, where mean and var are its running statistics, or in training the batch's
// own, which the input's sums give. So mean(y) = a·mean(x) + b and var(y) = a²·var(x). Where
// that does not hold it reduces `output`: [N, C, L] input (channelSums() takes its channels from
// the last dim), no running statistics in eval, off the CPU (launches there cost more than the
// reads). Also the TorchScript operator scalpel::batch_norm_output_sums, given F.batch_norm's
// arguments.
torch::Tensor batchNormOutputSums(const torch::Tensor& output, const torch::Tensor& inputSums,
                                  const c10::optional<torch::Tensor>& runningMean,
                                  const c10::optional<torch::Tensor>& runningVar,
                                  const c10::optional<torch::Tensor>& weight,
                                  const c10::optional<torch::Tensor>& bias, bool training,
                                  double eps);

// The operators' symbols for graph rewriting; calling one also links in their registration.
c10::Symbol channelSumsOperator();
c10::Symbol batchNormOutputSumsOperator();

}  // namespace scalpel
