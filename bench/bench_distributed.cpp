// Data-parallel scaling: `scalpel-cli train` on 1 process vs N processes of this machine (Gloo on
// loopback), same model, data, global batch and seed, with every layer trainable and with only
// the last block: the training time the CLI reports (data loading excluded), median over rounds
// run alternately; prints the speed-up (1-process time ÷ N-process time), asserts nothing.
//   bench_distributed SCALPEL_CLI DEMO_MODEL [--nproc N] [--rounds R] [--device cpu|cuda] [--epochs
//   E]
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

namespace {

// The seconds of "finished after S steps in X s", or -1 (with the output shown) on failure.
double trainSeconds(const std::string& command) {
  std::string output;
  if (FILE* pipe = popen((command + " 2>&1").c_str(), "r")) {
    std::array<char, 4096> buffer{};
    while (fgets(buffer.data(), buffer.size(), pipe)) output += buffer.data();
    if (pclose(pipe) != 0) output += "(failed)";
  }
  std::smatch match;
  if (!std::regex_search(output, match, std::regex("finished after \\d+ steps in ([0-9.]+) s"))) {
    std::fprintf(stderr, "%s\n%s\n", command.c_str(), output.c_str());
    return -1;
  }
  return std::stod(match[1]);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_distributed SCALPEL_CLI DEMO_MODEL [--nproc N] [--rounds R] "
                 "[--device cpu|cuda] [--epochs E]\n");
    return 2;
  }
  const std::string cli = argv[1], model = argv[2];
  int processes = 2, rounds = 3, epochs = 5;
  std::string device = "cpu";
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--nproc") processes = std::atoi(value.c_str());
    if (flag == "--rounds") rounds = std::atoi(value.c_str());
    if (flag == "--device") device = value;
    if (flag == "--epochs") epochs = std::atoi(value.c_str());
  }
  // 2000 labelled images in global batches of 100 (a multiple of 1-4 processes): 20 steps an epoch.
  const std::string common =
      "'" + cli + "' train --model '" + model +
      "' --shift gaussian-noise --severity 3 --bn-eval --train-per-class 200 "
      "--validation-per-class 50 --batch-size 100 --epochs " +
      std::to_string(epochs) + " --device " + device + " --out /tmp/scalpel-bench-distributed.pt";
  std::printf(
      "data-parallel training of %s on %s: 1 process vs %d, median of %d alternating rounds "
      "(training seconds as reported)\n",
      model.c_str(), device.c_str(), processes, rounds);
  std::printf("%-22s %12s %12s %10s\n", "trainable", "1 process", "processes", "speed-up");
  for (const char* strategy : {"all", "last"}) {
    std::vector<double> one, many;
    for (int round = 0; round < rounds; ++round) {
      const std::string run = common + " --strategy " + strategy;
      one.push_back(trainSeconds(run + " --nproc 1"));
      many.push_back(trainSeconds(run + " --nproc " + std::to_string(processes)));
      if (one.back() < 0 || many.back() < 0) return 1;
    }
    const double a = median(one), b = median(many);
    std::printf("%-22s %10.2f s %10.2f s %9.2fx\n",
                strategy == std::string("all") ? "every layer" : "last block only", a, b,
                b > 0 ? a / b : 0);
  }
  return 0;
}
