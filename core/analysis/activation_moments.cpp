#include "analysis/activation_moments.h"

#include <algorithm>

namespace scalpel {

std::vector<ChannelMoments> momentsFromChannelSums(const std::vector<torch::Tensor>& sums) {
  std::vector<ChannelMoments> moments(sums.size());
  if (sums.empty()) return moments;
  const auto all = torch::cat(sums).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = all.data_ptr<double>();
  for (std::size_t i = 0; i < sums.size(); ++i) {
    const auto c = static_cast<std::size_t>((sums[i].numel() - 1) / 2);
    const double* sum = p;
    const double* squares = p + c;
    const double n = p[2 * c];
    p += 2 * c + 1;
    auto& m = moments[i];
    m.count = n;
    m.mean.resize(c);
    m.m2.resize(c);
    for (std::size_t k = 0; k < c; ++k) {
      m.mean[k] = sum[k] / n;
      m.m2[k] = std::max(0.0, squares[k] - sum[k] * sum[k] / n);
    }
  }
  return moments;
}

}  // namespace scalpel
