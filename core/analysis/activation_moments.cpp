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
    const std::int64_t channelDim = x.dim() == 3 ? 2 : 1;
    std::vector<std::int64_t> reduce;
    for (std::int64_t d = 0; d < x.dim(); ++d) {
      if (d != channelDim) reduce.push_back(d);
    }
    sums.push_back(x.sum(reduce).flatten());
    sums.push_back((x * x).sum(reduce).flatten());
    counts.push_back(static_cast<double>(x.numel() / std::max<std::int64_t>(1, x.size(channelDim))));
    channels.push_back(x.size(channelDim));
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
