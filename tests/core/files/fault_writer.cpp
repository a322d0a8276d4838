// A process for test_faults to kill or starve: it writes one kind of file over and over, the way
// Scalpel does (atomically), until it is killed.
//   fault_writer session PATH          saves two alternating sessions to PATH forever
//   fault_writer export MODEL PATH     exports MODEL with two alternating reports to PATH forever
//   fault_writer limited BYTES PATH    saves one session with the file size limited to BYTES
//                                      (as a full disk would), prints the error, exits 0 if refused
// Prints "writing" once the first file is in place, so the killer knows the loop has begun.

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "io/model_export.h"
#include "io/session.h"

namespace {

// A session big enough (a few MB) that writing it takes a while: many runs with long histories.
scalpel::Session bigSession(int variant) {
  scalpel::Session session;
  session.modelPath = "/nonexistent/model-" + std::to_string(variant) + ".pt";
  session.strategy = variant ? "auto" : "all";
  for (int r = 0; r < 60; ++r) {
    scalpel::SessionRun run;
    run.name = "run " + std::to_string(r) + " of variant " + std::to_string(variant);
    for (int p = 0; p < 200; ++p) {
      scalpel::EvaluationPoint point;
      point.step = static_cast<std::size_t>(p);
      point.trainLoss = 1.0 / (p + 1) + variant;
      point.validation.loss = point.trainLoss;
      point.validation.accuracy = 0.5;
      run.report.history.push_back(point);
    }
    session.runs.push_back(run);
  }
  return session;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "session" && argc == 3) {
    const scalpel::Session sessions[] = {bigSession(0), bigSession(1)};
    for (long i = 0;; ++i) {
      const auto error = scalpel::saveSession(sessions[i % 2], argv[2]);
      if (!error.empty()) return std::fprintf(stderr, "%s\n", error.c_str()), 1;
      if (i == 0) std::printf("writing\n"), std::fflush(stdout);
    }
  }
  if (mode == "export" && argc == 4) {
    std::ifstream in(argv[2], std::ios::binary);
    const std::string model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string reports[] = {R"({"variant": 0})", R"({"variant": 1})"};
    for (long i = 0;; ++i) {
      const auto error = scalpel::exportTunedModel(model, reports[i % 2], argv[3]);
      if (!error.empty()) return std::fprintf(stderr, "%s\n", error.c_str()), 1;
      if (i == 0) std::printf("writing\n"), std::fflush(stdout);
    }
  }
  if (mode == "limited" && argc == 4) {
    std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG, as on a full disk
    const rlimit limit{static_cast<rlim_t>(std::stoul(argv[2])),
                       static_cast<rlim_t>(std::stoul(argv[2]))};
    setrlimit(RLIMIT_FSIZE, &limit);
    const auto error = scalpel::saveSession(bigSession(1), argv[3]);
    std::printf("%s\n", error.c_str());
    return error.empty() ? 1 : 0;
  }
  std::fprintf(stderr,
               "usage: fault_writer session PATH | export MODEL PATH | limited BYTES PATH\n");
  return 2;
}
