#pragma once

namespace scalpel {

// Torch defaults to one thread on these machines (DESIGN.md): give it every core.
// Call once at start-up, before any torch work. With LOCAL_WORLD_SIZE=N (N processes of a
// distributed run on this machine), a 1/N share of them.
void useAllCores();

// Torch's intra-op threads (OpenMP): set once at start-up, and again on each worker thread that
// runs torch work (new threads start from the default). The sweep runs several trainings at a
// time with fewer threads each.
void useTorchThreads(int threads);
int torchThreads();

}  // namespace scalpel
