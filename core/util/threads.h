#pragma once

namespace scalpel {

// Torch defaults to one thread on these machines (DESIGN.md): give it every core.
// Call once at start-up, before any torch work.
void useAllCores();

}  // namespace scalpel
