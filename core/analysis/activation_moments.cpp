#include "analysis/activation_moments.h"

#include <algorithm>

namespace scalpel {

std::vector<ChannelMoments> activationMoments(const std::vector<torch::Tensor>& activations) {
  std::vector<torch::Tensor> sums;
  std::vector<double> counts;
  std::vector<std::int64_t> channels;
  // Taps may share one tensor (a block and its last layer): reduce each tensor once.
  std::vector<std::size_t> slot(activations.size());
  std::vector<const c10::TensorImpl*> seen;
  sums.reserve(2 * activations.size());
  for (std::size_t a = 0; a < activations.size(); ++a) {
    const auto& activation = activations[a];
    const auto* impl = activation.unsafeGetTensorImpl();
    if (const auto it = std::find(seen.begin(), seen.end(), impl); it != seen.end()) {
      slot[a] = static_cast<std::size_t>(it - seen.begin());
      continue;
    }
    slot[a] = seen.size();
    seen.push_back(impl);
    torch::Tensor x = activation.detach();
    if (!x.is_floating_point()) x = x.to(torch::kFloat32);
    if (x.dim() < 2) x = x.reshape({-1, 1});
    // As [rows, C, run]: [N, C, H·W] for [N, C, H, W] (a view of a contiguous activation: each
    // channel's values are runs along the last dimension), [N·T, C, 1] for tokens, [N, C, 1] for
    // features. Where ATen reduces, Σx² comes from the 2-norm, so no squared copy is made.
    const std::int64_t channelDim = x.dim() == 3 ? 2 : 1;
    const std::int64_t c = x.size(channelDim);
    const auto rows = channelDim == 1 ? x.reshape({x.size(0), c, -1}) : x.reshape({-1, c, 1});
    if (x.is_cuda()) {  // launches dominate there: one reduction each
      sums.push_back(rows.sum(at::IntArrayRef{0, 2}));
      sums.push_back(at::linalg_vector_norm(rows, 2, {0, 2}).square());
    } else {  // the runs first, then the rows: ATen's CPU kernels are fastest along the last dim
      sums.push_back(rows.sum(2).sum(0));
      sums.push_back(at::linalg_vector_norm(rows, 2, {2}).square().sum(0));
    }
    counts.push_back(static_cast<double>(x.numel() / std::max<std::int64_t>(1, c)));
    channels.push_back(c);
  }
  std::vector<ChannelMoments> distinct(seen.size());
  if (sums.empty()) return distinct;
  const auto all = torch::cat(sums).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = all.data_ptr<double>();
  for (std::size_t i = 0; i < distinct.size(); ++i) {
    const auto c = static_cast<std::size_t>(channels[i]);
    const double n = counts[i];
    const double* sum = p;
    const double* squares = p + c;
    p += 2 * c;
    distinct[i].count = n;
    distinct[i].mean.resize(c);
    distinct[i].m2.resize(c);
    for (std::size_t k = 0; k < c; ++k) {
      distinct[i].mean[k] = sum[k] / n;
      distinct[i].m2[k] = std::max(0.0, squares[k] - sum[k] * sum[k] / n);
    }
  }
  std::vector<ChannelMoments> moments;
  moments.reserve(activations.size());
  for (std::size_t a = 0; a < activations.size(); ++a) moments.push_back(distinct[slot[a]]);
  return moments;
}

}  // namespace scalpel
