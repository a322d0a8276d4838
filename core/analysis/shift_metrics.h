#pragma once

#include "analysis/channel_moments.h"

namespace scalpel {

// How far a layer's target activations moved from the reference (METHOD.md).
struct LayerShift {
  double kl = 0;          // symmetric Gaussian KL per channel, averaged over channels
  double smd = 0;         // |μt − μs| / pooled σ per channel, averaged over channels
  double noiseFloor = 0;  // the KL expected from sampling error alone at these sample sizes
};

// The variance floor added to every variance: keeps dead channels (σ = 0) from dividing by zero.
inline constexpr double kVarianceEpsilon = 1e-5;

// Symmetric KL between N(μs, σs²) and N(μt, σt²):
// ½(σs²/σt² + σt²/σs²) − 1 + ½(μs − μt)²(1/σs² + 1/σt²).
double symmetricGaussianKl(double meanS, double varS, double meanT, double varT);

// Compares per-channel moments. `referenceItems` and `targetItems` count independent samples
// (images, not pixel positions, which are correlated); a reference from BatchNorm running
// statistics has no sampling error: pass 0 for it.
LayerShift compareMoments(const ChannelMoments& reference, double referenceItems,
                          const ChannelMoments& target, double targetItems);

}  // namespace scalpel
