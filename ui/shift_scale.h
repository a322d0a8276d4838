#pragma once

#include <QColor>
#include <QVector>

namespace scalpel::ui {

// One colour scale for shift everywhere (heatmap, diagram, legend): how far a layer's activations
// moved, as log10(KL ÷ noise floor) clamped to [0, kMaxDecades], on viridis (perceptually
// uniform, readable in grey and by colour-blind people): dark = at the noise floor, yellow = far
// above it.
struct ShiftScale {
  static constexpr double kMaxDecades = 3.0;  // colour saturates at 1000× the noise floor

  // The level of a score; 0 when there is no noise floor to compare with.
  static double level(double kl, double noiseFloor);
  // The colour of a level in [0, kMaxDecades].
  static QColor colour(double level);
  // The colour stops, evenly spaced from level 0 to kMaxDecades.
  static const QVector<QColor>& stops();
  // For a tooltip or a legend: "56× the noise floor", "at the noise floor".
  static QString describe(double kl, double noiseFloor);
};

}  // namespace scalpel::ui
