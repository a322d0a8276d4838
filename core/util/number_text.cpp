#include "util/number_text.h"

#include <cmath>
#include <cstdio>

namespace scalpel {

std::string points(double fraction) {
  if (!std::isfinite(fraction)) return "n/a";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", 100 * fraction);
  return text;
}

std::string percent(double fraction) {
  return std::isfinite(fraction) ? points(fraction) + "%" : "n/a";
}

}  // namespace scalpel
