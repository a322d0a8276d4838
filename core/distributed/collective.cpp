#include "distributed/collective.h"

#include <torch/script.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "distributed/gradient_averager.h"
#include "util/logging.h"
#include "util/torch_errors.h"

namespace scalpel {

struct Collective::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

// Gloo's transport: the interface GLOO_SOCKET_IFNAME names (as PyTorch reads it), loopback when
// every rank is on this machine, else the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> glooDevice(const LaunchEnvironment& environment) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  const auto& address = environment.masterAddress;
  if (address == "127.0.0.1" || address == "localhost" || address == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

[[noreturn]] void brokeOff(const LaunchEnvironment& environment, const char* what,
                           const std::exception& error) {
  throw std::runtime_error("the distributed run broke off while " + std::string(what) + " (" +
                           environment.describe() + "): " + summariseTorchError(error.what()) +
                           " — another process failed or was stopped; its own message says why");
}

template <typename Call>
void collectively(const LaunchEnvironment& environment, const char* what, Call&& call) {
  try {
    call();
  } catch (const std::exception& error) {
    brokeOff(environment, what, error);
  }
}

}  // namespace

Collective::Collective(LaunchEnvironment environment, std::unique_ptr<Impl> impl)
    : m_environment(std::move(environment)), m_impl(std::move(impl)) {}

Collective::~Collective() = default;

std::shared_ptr<Collective> Collective::connect(const LaunchEnvironment& environment,
                                                std::string& error) {
  const std::string where =
      environment.masterAddress + ":" + std::to_string(environment.masterPort);
  try {
    auto impl = std::make_unique<Impl>();
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(environment.masterPort);
    storeOptions.isServer = environment.rank == 0;
    storeOptions.numWorkers = static_cast<std::size_t>(environment.worldSize);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = environment.timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(environment.masterAddress, storeOptions);
    auto options = c10d::ProcessGroupGloo::Options::create(environment.timeout);
    options->devices.push_back(glooDevice(environment));
    options->threads = 2;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, environment.rank,
                                                              environment.worldSize, options);
    logger("distributed")->info("joined as {} through {} (Gloo)", environment.describe(), where);
    return std::shared_ptr<Collective>(new Collective(environment, std::move(impl)));
  } catch (const std::exception& failure) {
    error = "could not join the distributed run as " + environment.describe() + " at " + where +
            " within " + std::to_string(environment.timeout.count()) +
            " s: " + summariseTorchError(failure.what()) +
            " — check that every rank was started and that MASTER_ADDR:MASTER_PORT is rank 0's "
            "reachable address and a free port";
    return nullptr;
  }
}

void Collective::allReduceSum(std::vector<torch::Tensor>& tensors) {
  collectively(m_environment, "summing across processes", [&] {
    for (auto& tensor : tensors) {
      std::vector<torch::Tensor> one{tensor};
      m_impl->group->allreduce(one)->wait();
    }
  });
}

std::string Collective::shareFromRankZero(const std::string& key, const std::string& text,
                                          std::chrono::seconds timeout) {
  std::string shared = text;
  collectively(m_environment, ("sharing " + key).c_str(), [&] {
    if (rank() == 0) {
      m_impl->store->set(key, std::vector<std::uint8_t>(text.begin(), text.end()));
      return;
    }
    m_impl->store->wait({key}, timeout);
    const auto bytes = m_impl->store->get(key);
    shared.assign(bytes.begin(), bytes.end());
  });
  return shared;
}

void Collective::barrier() {
  collectively(m_environment, "waiting for every process",
               [&] { m_impl->group->barrier()->wait(); });
}

// --- gradient averaging -------------------------------------------------------------------------

struct GradientAverager::Impl {
  struct Slot {  // where one parameter's gradient lives in its bucket
    std::size_t bucket = 0;
    std::int64_t offset = 0;
    bool filled = false;
  };
  struct Bucket {
    torch::Tensor flat;
    std::size_t members = 0;
    std::size_t filled = 0;
    c10::intrusive_ptr<c10d::Work> work;  // set once launched
  };

  std::shared_ptr<Collective> collective;
  std::vector<torch::Tensor> parameters;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<std::pair<torch::Tensor, unsigned>> hooks;
  std::size_t launched = 0;  // buckets launched, always a prefix: every rank calls in one order
  bool armed = false;
  std::uint64_t bytes = 0;
  std::mutex mutex;  // CUDA's autograd threads may run hooks

  void launchReady(bool all) {
    while (launched < buckets.size() &&
           (all || buckets[launched].filled == buckets[launched].members)) {
      auto& bucket = buckets[launched];
      std::vector<torch::Tensor> tensors{bucket.flat};
      collectively(collective->environment(), "averaging gradients",
                   [&] { bucket.work = collective->impl().group->allreduce(tensors); });
      bytes += static_cast<std::uint64_t>(bucket.flat.numel()) * bucket.flat.element_size();
      ++launched;
    }
  }

  void onGradient(std::size_t index, const torch::Tensor& gradient) {
    std::lock_guard lock(mutex);
    if (!armed) return;
    auto& slot = slots[index];
    auto& bucket = buckets[slot.bucket];
    const auto& parameter = parameters[index];
    bucket.flat.narrow(0, slot.offset, parameter.numel()).view(parameter.sizes()).copy_(gradient);
    if (!slot.filled) {
      slot.filled = true;
      ++bucket.filled;
    }
    launchReady(false);
  }
};

GradientAverager::GradientAverager(std::shared_ptr<Collective> collective,
                                   std::vector<torch::Tensor> parameters, std::size_t bucketBytes)
    : m_impl(std::make_unique<Impl>()) {
  auto& impl = *m_impl;
  impl.collective = std::move(collective);
  impl.parameters = std::move(parameters);
  impl.slots.resize(impl.parameters.size());
  // Reverse order: backward reaches the last layers first, so their bucket fills first.
  std::int64_t used = 0;
  for (std::size_t k = impl.parameters.size(); k-- > 0;) {
    const auto& parameter = impl.parameters[k];
    const auto bytes = static_cast<std::size_t>(parameter.numel()) * parameter.element_size();
    const bool fits =
        !impl.buckets.empty() &&
        impl.buckets.back().flat.scalar_type() == parameter.scalar_type() &&
        impl.buckets.back().flat.device() == parameter.device() &&
        static_cast<std::size_t>(used) * parameter.element_size() + bytes <= bucketBytes;
    if (!fits) {
      impl.buckets.push_back({});
      impl.buckets.back().flat = torch::empty({0}, parameter.options());
      used = 0;
    }
    auto& bucket = impl.buckets.back();
    impl.slots[k] = {impl.buckets.size() - 1, used, false};
    used += parameter.numel();
    ++bucket.members;
    // Grown as members join; sized exactly once the bucket is closed.
    bucket.flat = torch::empty({used}, parameter.options().requires_grad(false));
  }
  for (std::size_t k = 0; k < impl.parameters.size(); ++k) {
    auto* raw = m_impl.get();
    const auto handle = impl.parameters[k].register_hook(
        [raw, k](const torch::Tensor& gradient) { raw->onGradient(k, gradient); });
    impl.hooks.emplace_back(impl.parameters[k], handle);
  }
}

GradientAverager::~GradientAverager() {
  for (auto& [parameter, handle] : m_impl->hooks) parameter.remove_hook(handle);
}

void GradientAverager::arm() {
  std::lock_guard lock(m_impl->mutex);
  for (auto& slot : m_impl->slots) slot.filled = false;
  for (auto& bucket : m_impl->buckets) {
    bucket.filled = 0;
    bucket.work.reset();
  }
  m_impl->launched = 0;
  m_impl->armed = true;
}

void GradientAverager::finish() {
  auto& impl = *m_impl;
  std::lock_guard lock(impl.mutex);
  if (!impl.armed) return;
  impl.armed = false;
  torch::NoGradGuard noGrad;
  // A parameter this rank's batch did not reach contributes zeros (another rank's may have).
  for (std::size_t k = 0; k < impl.parameters.size(); ++k) {
    const auto& slot = impl.slots[k];
    if (!slot.filled)
      impl.buckets[slot.bucket].flat.narrow(0, slot.offset, impl.parameters[k].numel()).zero_();
  }
  impl.launchReady(true);
  const double ranks = impl.collective->size();
  for (auto& bucket : impl.buckets) {
    collectively(impl.collective->environment(), "averaging gradients",
                 [&] { bucket.work->wait(); });
    bucket.flat.div_(ranks);
  }
  for (std::size_t k = 0; k < impl.parameters.size(); ++k) {
    auto& parameter = impl.parameters[k];
    const auto& slot = impl.slots[k];
    const auto average = impl.buckets[slot.bucket]
                             .flat.narrow(0, slot.offset, parameter.numel())
                             .view(parameter.sizes());
    if (parameter.grad().defined()) {
      parameter.mutable_grad().copy_(average);
    } else {
      parameter.mutable_grad() = average.clone();
    }
  }
}

std::uint64_t GradientAverager::bytesReduced() const { return m_impl->bytes; }

std::size_t GradientAverager::buckets() const { return m_impl->buckets.size(); }

}  // namespace scalpel
