// The build without c10d's Gloo (SCALPEL_DISTRIBUTED=OFF): a single process trains as before,
// and asking for several says what to do.
#include "distributed/collective.h"

#include <torch/script.h>

#include "distributed/gradient_averager.h"

namespace scalpel {

struct Collective::Impl {};
struct GradientAverager::Impl {};

Collective::Collective(LaunchEnvironment environment, std::unique_ptr<Impl> impl)
    : m_environment(std::move(environment)), m_impl(std::move(impl)) {}
Collective::~Collective() = default;

std::shared_ptr<Collective> Collective::connect(const LaunchEnvironment& environment,
                                                std::string& error) {
  error =
      "this scalpel-cli was built without distributed training (SCALPEL_DISTRIBUTED=OFF), so it "
      "cannot join " +
      environment.describe() +
      " — rebuild with gloo's headers installed (apt-get install libgloo-dev)";
  return nullptr;
}

// Unreachable: no Collective can be made in this build.
void Collective::allReduceSum(std::vector<torch::Tensor>&) {}
std::string Collective::shareFromRankZero(const std::string&, const std::string& text,
                                          std::chrono::seconds) {
  return text;
}
void Collective::barrier() {}

GradientAverager::GradientAverager(std::shared_ptr<Collective>, std::vector<torch::Tensor>,
                                   std::size_t) {}
GradientAverager::~GradientAverager() = default;
void GradientAverager::arm() {}
void GradientAverager::finish() {}
std::uint64_t GradientAverager::bytesReduced() const { return 0; }
std::size_t GradientAverager::buckets() const { return 0; }

}  // namespace scalpel
