#pragma once

// What every scalpel-cli command prints the same way.

#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace scalpel::cli {

// "error: MESSAGE" on stderr; the exit status of a command that failed.
inline int fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

// 0.912 -> "91.2%"
inline std::string percent(double fraction) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << 100 * fraction << "%";
  return text.str();
}

}  // namespace scalpel::cli
