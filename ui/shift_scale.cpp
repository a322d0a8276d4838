#include "shift_scale.h"

#include <QString>
#include <algorithm>
#include <cmath>

namespace scalpel::ui {

double ShiftScale::level(double kl, double noiseFloor) {
  const double ratio = noiseFloor > 0 ? kl / noiseFloor : 0;
  return std::clamp(std::log10(std::max(ratio, 1.0)), 0.0, kMaxDecades);
}

const QVector<QColor>& ShiftScale::stops() {
  static const QVector<QColor> viridis{QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140),
                                       QColor(94, 201, 98), QColor(253, 231, 37)};
  return viridis;
}

QColor ShiftScale::colour(double level) {
  const auto& s = stops();
  const double position = std::clamp(level / kMaxDecades, 0.0, 1.0) * (s.size() - 1);
  const int below = std::min(static_cast<int>(position), static_cast<int>(s.size()) - 2);
  const double t = position - below;
  const QColor& a = s[below];
  const QColor& b = s[below + 1];
  return QColor::fromRgbF(static_cast<float>(a.redF() + t * (b.redF() - a.redF())),
                          static_cast<float>(a.greenF() + t * (b.greenF() - a.greenF())),
                          static_cast<float>(a.blueF() + t * (b.blueF() - a.blueF())));
}

QString ShiftScale::describe(double kl, double noiseFloor) {
  if (noiseFloor <= 0) return QStringLiteral("KL %1 (no noise floor)").arg(kl, 0, 'g', 3);
  const double ratio = kl / noiseFloor;
  if (ratio < 1.5) return QStringLiteral("at the noise floor (KL %1)").arg(kl, 0, 'g', 3);
  return QStringLiteral("%1× the noise floor (KL %2)")
      .arg(ratio, 0, 'f', ratio < 10 ? 1 : 0)
      .arg(kl, 0, 'g', 3);
}

}  // namespace scalpel::ui
