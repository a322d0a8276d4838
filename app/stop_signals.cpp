#include "stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <iostream>
#include <thread>

#include "train/trainer.h"

namespace scalpel::cli {

namespace {

// A signal handler may only do what is async-signal-safe: read the clock, compare and swap, write
// a byte to a pipe, _exit. The thread at the pipe's other end does the rest (TrainControl locks a
// mutex).
int g_wake[2] = {-1, -1};
std::atomic<long long> g_firstSignalMs{0};
static_assert(std::atomic<long long>::is_always_lock_free);

void onStopSignal(int signal) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const long long ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000;
  long long first = 0;
  if (g_firstSignalMs.compare_exchange_strong(first, ms)) {
    const char byte = static_cast<char>(signal);
    [[maybe_unused]] const auto written = write(g_wake[1], &byte, 1);
    return;
  }
  // A terminal's Ctrl-C reaches the processes of `--nproc` twice, directly and passed on by the
  // launcher (and so under torchrun): a repeat within 2 s is the same request.
  if (ms - first > 2000) _exit(128 + signal);
}

}  // namespace

void cancelTrainingOnStopSignals(TrainControl& control, bool announce) {
  if (pipe(g_wake) != 0) return;  // no pipe: signals keep their default (end the process)
  std::thread([&control, announce] {
    char signal = 0;
    if (read(g_wake[0], &signal, 1) != 1) return;
    if (announce)
      std::cerr << "\nstopping after this step (" << strsignal(signal)
                << "): the best state so far will be written — press Ctrl-C again to stop at once\n"
                << std::flush;
    control.cancel();
  }).detach();
  struct sigaction action {};
  action.sa_handler = onStopSignal;
  action.sa_flags = SA_RESTART;  // the other threads' reads and writes (Gloo's sockets) go on
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace scalpel::cli
