#include "analysis/activation_moments.h"

namespace scalpel {

std::vector<ChannelMoments> activationMoments(const std::vector<torch::Tensor>& activations) {
  std::vector<torch::Tensor> sums;
  std::vector<double> counts;
  std::vector<std::int64_t> channels;
  sums.reserve(2 * activations.size());
  for (const auto& activation : activations) {
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
  std::vector<ChannelMoments> moments(activations.size());
  if (sums.empty()) return moments;
  const auto all = torch::cat(sums).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = all.data_ptr<double>();
  for (std::size_t i = 0; i < moments.size(); ++i) {
    const auto c = static_cast<std::size_t>(channels[i]);
    const double n = counts[i];
    const double* sum = p;
    const double* squares = p + c;
    p += 2 * c;
    moments[i].count = n;
    moments[i].mean.resize(c);
    moments[i].m2.resize(c);
    for (std::size_t k = 0; k < c; ++k) {
      moments[i].mean[k] = sum[k] / n;
      moments[i].m2[k] = std::max(0.0, squares[k] - sum[k] * sum[k] / n);
    }
  }
  return moments;
}

}  // namespace scalpel
