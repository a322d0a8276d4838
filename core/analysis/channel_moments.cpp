#include "analysis/channel_moments.h"

#include <stdexcept>

namespace scalpel {

void ChannelMoments::merge(const ChannelMoments& other) {
  if (other.count == 0) return;
  if (count == 0) {
    *this = other;
    return;
  }
  if (other.channels() != channels())
    throw std::invalid_argument("merging moments of different channel counts");
  const double total = count + other.count;
  for (std::size_t c = 0; c < channels(); ++c) {
    const double delta = other.mean[c] - mean[c];
    mean[c] += delta * other.count / total;
    m2[c] += other.m2[c] + delta * delta * count * other.count / total;
  }
  count = total;
}

}  // namespace scalpel
