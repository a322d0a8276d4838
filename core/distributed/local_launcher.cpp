#include "distributed/local_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>

extern char** environ;

namespace scalpel {
namespace {

std::atomic<int> g_forwardSignal{0};

void rememberSignal(int signal) { g_forwardSignal = signal; }

std::string describeStatus(int status) {
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    return std::string("was killed by signal ") + std::to_string(signal) + " (" +
           strsignal(signal) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// This process's environment with the launcher's variables put in (replacing any there).
std::vector<std::string> childEnvironment(const std::map<std::string, std::string>& set) {
  std::vector<std::string> entries;
  for (char** entry = environ; *entry; ++entry) {
    const std::string text = *entry;
    if (!set.count(text.substr(0, text.find('=')))) entries.push_back(text);
  }
  for (const auto& [name, value] : set) entries.push_back(name + "=" + value);
  return entries;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (auto& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

}  // namespace

int freeLocalPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // the kernel picks one
  socklen_t length = sizeof address;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

LaunchOutcome launchLocalProcesses(const LocalLaunch& launch,
                                   const std::function<void(int, int)>& started) {
  LaunchOutcome outcome;
  const int port = freeLocalPort();
  if (port == 0) {
    outcome.exitCode = 1;
    outcome.message =
        "no free TCP port on 127.0.0.1 for the processes to meet at — set MASTER_PORT and launch "
        "with torchrun instead";
    return outcome;
  }
  // Forward Ctrl-C and kill to the workers instead of dying and leaving them behind.
  struct sigaction forward {
  }, oldInterrupt{}, oldTerminate{};
  forward.sa_handler = rememberSignal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, &oldInterrupt);
  sigaction(SIGTERM, &forward, &oldTerminate);
  g_forwardSignal = 0;

  std::map<pid_t, int> running;  // pid → rank
  for (int rank = 0; rank < launch.processes; ++rank) {
    auto environment = childEnvironment({{"MASTER_ADDR", "127.0.0.1"},
                                         {"MASTER_PORT", std::to_string(port)},
                                         {"RANK", std::to_string(rank)},
                                         {"LOCAL_RANK", std::to_string(rank)},
                                         {"WORLD_SIZE", std::to_string(launch.processes)},
                                         {"LOCAL_WORLD_SIZE", std::to_string(launch.processes)}});
    std::vector<std::string> argv{launch.program};
    argv.insert(argv.end(), launch.arguments.begin(), launch.arguments.end());
    auto argvPointers = pointers(argv);
    auto environmentPointers = pointers(environment);
    pid_t pid = 0;
    const int error = posix_spawn(&pid, launch.program.c_str(), nullptr, nullptr,
                                  argvPointers.data(), environmentPointers.data());
    if (error != 0) {
      outcome.exitCode = 1;
      outcome.message = "could not start " + launch.program + " as rank " + std::to_string(rank) +
                        ": " + std::strerror(error);
      break;
    }
    running[pid] = rank;
    if (started) started(rank, static_cast<int>(pid));
  }

  using Clock = std::chrono::steady_clock;
  bool stopping = outcome.exitCode != 0;  // a process failed (or could not start): stop the rest
  auto deadline = Clock::now() + launch.grace;
  bool terminated = false, killed = false;
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      const int rank = running[pid];
      running.erase(pid);
      const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      if (failed && outcome.exitCode == 0) {
        outcome.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        outcome.message = "rank " + std::to_string(rank) + " (process " + std::to_string(pid) +
                          ") " + describeStatus(status);
        if (!stopping) deadline = Clock::now() + launch.grace;
        stopping = true;
      }
      continue;
    }
    if (pid < 0) break;  // no children left to wait for
    if (g_forwardSignal != 0) {
      for (const auto& [child, rank] : running) kill(child, g_forwardSignal);
      if (!stopping) {
        outcome.exitCode = 128 + g_forwardSignal;
        outcome.stopSignal = g_forwardSignal;
        outcome.message = std::string("stopped by signal ") +
                          std::to_string(g_forwardSignal.load()) + " (" +
                          strsignal(g_forwardSignal) + ")";
        deadline = Clock::now() + launch.grace;
      }
      stopping = true;
      g_forwardSignal = 0;
    }
    if (stopping && Clock::now() > deadline && !terminated) {
      for (const auto& [child, rank] : running) kill(child, SIGTERM);
      terminated = true;
      deadline = Clock::now() + std::chrono::seconds(5);
    } else if (terminated && !killed && Clock::now() > deadline) {
      for (const auto& [child, rank] : running) kill(child, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (terminated)
    outcome.message += "; the other processes did not stop by themselves and were stopped";
  sigaction(SIGINT, &oldInterrupt, nullptr);
  sigaction(SIGTERM, &oldTerminate, nullptr);
  return outcome;
}

}  // namespace scalpel
