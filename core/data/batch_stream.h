#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

struct Batch {
  torch::Tensor inputs;   // [B, ...itemShape], normalised, on the stream's device
  torch::Tensor targets;  // [B] int64 class labels, or [B, T] float32 regression targets
};

// Serves batches of a data set for one epoch at a time. A background thread gathers and
// normalises the next batches while the caller computes (into pinned memory when the device is
// CUDA, copied without blocking), so decoding overlaps compute.
//
// Normalisation uses the *model's* mean and std (ModelMetadata), never the batch's own
// statistics: those would erase the very shifts Scalpel looks for.
class BatchStream {
 public:
  // For a stream that lives only while `data` does (within one function): shares without copying.
  static std::shared_ptr<const Dataset> borrow(const Dataset& data) {
    return std::shared_ptr<const Dataset>(&data, [](const Dataset*) {});
  }

  struct Options {
    std::size_t batchSize = 64;
    bool shuffle = true;
    std::uint64_t seed = 0;  // epoch e is shuffled with seed + e: the same seed, the same order
    bool dropLast = false;
    std::vector<double> mean;  // per channel (or one for all); empty: no normalisation
    std::vector<double> std;
    // Images are fitted to the model's input {C, H, W} before normalisation: grey made RGB (or RGB
    // grey, by luminance), then scaled as ModelMetadata::resize says (H and W 0: channels only).
    // Empty: served as they are.
    std::vector<std::int64_t> fitTo;
    int resize = 0;  // the shorter side before a centre crop to H×W; 0: scaled straight to H×W
    torch::Device device = torch::kCPU;
    std::size_t prefetch = 3;  // batches prepared ahead
    // On CUDA, a set up to this size is normalised and uploaded once and batches are gathered on
    // the GPU: target sets are small, and a per-step host gather would leave the GPU waiting.
    std::size_t residentBytes = std::size_t(2) << 30;
    bool residentOnCpu = false;  // the same on the CPU (for tests: it is no faster there)
    // false: each batch is gathered on the caller's thread into ordinary (pageable) memory and
    // copied with a blocking copy, as a naive loader would: the baseline the benchmark measures
    // the background producer and the resident set against. Never resident.
    bool background = true;
    // One process's share when several train together (see shareOf()): every epoch's order is
    // split across `shares` processes and this stream serves share `share`; `padShares` as there.
    std::size_t share = 0;
    std::size_t shares = 1;
    bool padShares = true;
  };

  BatchStream(std::shared_ptr<const Dataset> data, std::vector<std::size_t> indices,
              Options options);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // Starts (or restarts) epoch `epoch`; stops a producer still busy with the previous one.
  void startEpoch(int epoch);
  // The next batch of the current epoch, or nullopt when the epoch is done.
  std::optional<Batch> next();
  std::size_t batchesPerEpoch() const;
  std::size_t items() const { return m_indices.size(); }
  // The items this stream serves per epoch: all, or its share.
  std::size_t itemsPerEpoch() const;

 private:
  struct Queue;
  void produce(const std::vector<std::size_t>& order, Queue& queue) const;
  void fill(const std::vector<std::size_t>& order, Queue& queue) const;
  // Items order[start, start + count) normalised into one host batch (pinned when `pin`).
  Batch gather(const std::vector<std::size_t>& order, std::size_t start, std::size_t count,
               bool pin) const;

  std::shared_ptr<const Dataset> m_data;
  std::vector<std::size_t> m_indices;
  Options m_options;
  // Owned here alone: its destructor stops and joins the producer, which therefore never
  // outlives the stream or the data it reads.
  std::unique_ptr<Queue> m_queue;
  // The device-resident copy (see Options::residentBytes): items in m_indices order, and this
  // epoch's order as positions into it.
  bool residentOnDevice() const;
  bool fitsImages() const;  // the items need fitting to Options::fitTo
  std::size_t servedItemSize() const;
  void uploadResident();
  torch::Tensor m_residentInputs, m_residentTargets, m_epochOrder;
  std::size_t m_cursor = 0;
  std::vector<std::size_t> m_callerOrder;  // this epoch's order when !Options::background
};

}  // namespace scalpel
