#include "analysis/shift_metrics.h"

#include <algorithm>
#include <cmath>

namespace scalpel {

double symmetricGaussianKl(double meanS, double varS, double meanT, double varT) {
  varS += kVarianceEpsilon;
  varT += kVarianceEpsilon;
  const double d = meanS - meanT;
  return 0.5 * (varS / varT + varT / varS) - 1.0 + 0.5 * d * d * (1.0 / varS + 1.0 / varT);
}

LayerShift compareMoments(const ChannelMoments& reference, double referenceItems,
                          const ChannelMoments& target, double targetItems) {
  LayerShift shift;
  const std::size_t channels = std::min(reference.channels(), target.channels());
  if (channels == 0) return shift;
  for (std::size_t c = 0; c < channels; ++c) {
    const double varS = reference.variance(c);
    const double varT = target.variance(c);
    shift.kl += symmetricGaussianKl(reference.mean[c], varS, target.mean[c], varT);
    shift.smd += std::abs(target.mean[c] - reference.mean[c]) /
                 std::sqrt(0.5 * (varS + varT) + kVarianceEpsilon);
  }
  shift.kl /= static_cast<double>(channels);
  shift.smd /= static_cast<double>(channels);
  // With n samples, the estimated mean is off by σ²/n and the log-variance by about 2/(n − 1):
  // each adds about 1/n to the expected KL, per side that is estimated.
  const auto side = [](double n) { return n > 1 ? 1.0 / n + 1.0 / (n - 1) : (n > 0 ? 2.0 : 0.0); };
  shift.noiseFloor = side(targetItems) + side(referenceItems);
  return shift;
}

}  // namespace scalpel
