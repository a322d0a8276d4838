#pragma once

// What every scalpel-cli command prints the same way.

#include <iostream>
#include <string>

#include "util/number_text.h"  // percent(): 0.912 -> "91.2%", as the window and reports print it

namespace scalpel::cli {

// "error: MESSAGE" on stderr; the exit status of a command that failed.
inline int fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

}  // namespace scalpel::cli
