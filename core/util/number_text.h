#pragma once

// Fractions as Scalpel's words, tables and reports print them: one decimal, so that every place a
// score appears (CLI, window, reports, explanations) shows the same digits. Torch-free, Qt-free.

#include <string>

namespace scalpel {

// A fraction in percentage points with one decimal (0.123 → "12.3"); "n/a" when not finite.
std::string points(double fraction);

// The same with a percent sign (0.912 → "91.2%"); "n/a" when not finite.
std::string percent(double fraction);

}  // namespace scalpel
