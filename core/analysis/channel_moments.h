#pragma once

#include <cstddef>
#include <vector>

namespace scalpel {

// Per-channel mean and sum of squared deviations of a stream of activations, merged batch by
// batch in float64 (Chan et al.'s parallel update), so memory does not grow with the batches.
struct ChannelMoments {
  double count = 0;          // values per channel seen so far (items × positions)
  std::vector<double> mean;  // per channel
  std::vector<double> m2;    // per channel: Σ (x − mean)²

  std::size_t channels() const { return mean.size(); }
  double variance(std::size_t channel) const { return count > 1 ? m2[channel] / (count - 1) : 0.0; }
  // Adds another set of moments over the same channels (e.g. the next batch's).
  void merge(const ChannelMoments& other);
};

}  // namespace scalpel
