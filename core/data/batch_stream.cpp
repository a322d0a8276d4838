#include "data/batch_stream.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "data/splits.h"

namespace scalpel {

// One epoch's hand-over between the producer thread and the caller.
struct BatchStream::Queue {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Batch> ready;
  bool finished = false;     // the producer has pushed its last batch
  bool stopped = false;      // the consumer gave up on this epoch
  std::exception_ptr error;  // what stopped the producer, rethrown to the caller by next()
  std::thread producer;

  ~Queue() {
    {
      std::lock_guard lock(mutex);
      stopped = true;
    }
    changed.notify_all();
    if (producer.joinable()) producer.join();
  }
};

BatchStream::BatchStream(std::shared_ptr<const Dataset> data, std::vector<std::size_t> indices,
                         Options options)
    : m_data(std::move(data)), m_indices(std::move(indices)), m_options(std::move(options)) {
  if (m_options.batchSize == 0) m_options.batchSize = 1;
  if (m_options.prefetch == 0) m_options.prefetch = 1;
}

BatchStream::~BatchStream() = default;

std::size_t BatchStream::itemsPerEpoch() const {
  const std::size_t n = m_indices.size(), shares = std::max<std::size_t>(1, m_options.shares);
  if (shares == 1) return n;
  if (m_options.padShares) return (n + shares - 1) / shares;
  return n / shares + (m_options.share < n % shares ? 1 : 0);
}

std::size_t BatchStream::batchesPerEpoch() const {
  const auto items = itemsPerEpoch();
  const auto full = items / m_options.batchSize;
  return full + (!m_options.dropLast && items % m_options.batchSize ? 1 : 0);
}

bool BatchStream::fitsImages() const {
  const auto& to = m_options.fitTo;
  const auto& item = m_data->itemShape;
  if (!m_data->isImage() || to.size() != 3 || item.size() != 3) return false;
  return item[0] != to[0] || (to[1] > 0 && (item[1] != to[1] || item[2] != to[2]));
}

std::size_t BatchStream::servedItemSize() const {
  if (!fitsImages()) return m_data->itemSize();
  const auto& to = m_options.fitTo;
  const auto& item = m_data->itemShape;
  return static_cast<std::size_t>(to[0] * (to[1] > 0 ? to[1] * to[2] : item[1] * item[2]));
}

bool BatchStream::residentOnDevice() const {
  return m_options.background && (m_options.device.is_cuda() || m_options.residentOnCpu) &&
         m_indices.size() * servedItemSize() * sizeof(float) <= m_options.residentBytes;
}

void BatchStream::uploadResident() {
  // The ordinary producer, once over every item in order, gathers the device-resident copy.
  Options once = m_options;
  once.shuffle = false;
  once.dropLast = false;
  once.batchSize = std::max<std::size_t>(m_options.batchSize, 256);
  once.residentBytes = 0;
  once.residentOnCpu = false;
  once.shares = 1;
  BatchStream loader(m_data, m_indices, once);
  loader.startEpoch(0);
  std::vector<torch::Tensor> inputs, targets;
  while (auto batch = loader.next()) {
    inputs.push_back(batch->inputs);
    targets.push_back(batch->targets);
  }
  m_residentInputs = torch::cat(inputs);
  m_residentTargets = torch::cat(targets);
}

void BatchStream::startEpoch(int epoch) {
  m_queue.reset();  // stops a previous producer first
  if (residentOnDevice()) {
    if (!m_residentInputs.defined()) uploadResident();
    // Positions shuffled exactly as the items are in the streamed case (same permutation).
    std::vector<std::size_t> positions(m_indices.size());
    for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = i;
    if (m_options.shuffle)
      seededShuffle(positions, m_options.seed + static_cast<std::uint64_t>(epoch));
    positions = shareOf(positions, m_options.share, m_options.shares, m_options.padShares);
    std::vector<std::int64_t> order(positions.begin(), positions.end());
    m_epochOrder = torch::tensor(order, torch::kInt64).to(m_options.device);
    m_cursor = 0;
    return;
  }
  std::vector<std::size_t> order = m_indices;
  if (m_options.shuffle) seededShuffle(order, m_options.seed + static_cast<std::uint64_t>(epoch));
  order = shareOf(order, m_options.share, m_options.shares, m_options.padShares);
  if (!m_options.background) {
    m_callerOrder = std::move(order);
    m_cursor = 0;
    return;
  }
  m_queue = std::make_unique<Queue>();
  m_queue->producer = std::thread(
      [this, order = std::move(order), queue = m_queue.get()] { produce(order, *queue); });
}

void BatchStream::produce(const std::vector<std::size_t>& order, Queue& queue) const {
  try {
    fill(order, queue);
  } catch (...) {  // an exception escaping a thread would end the program
    std::lock_guard lock(queue.mutex);
    queue.error = std::current_exception();
    queue.finished = true;
    queue.changed.notify_all();
  }
}

namespace {

// Images [B, C, H, W] as a model taking {C', H', W'} sees them (torchvision's Grayscale /
// Resize / CenterCrop, in that order).
torch::Tensor fitImages(torch::Tensor images, const std::vector<std::int64_t>& to, int resize) {
  const auto channels = images.size(1);
  const bool toGrey = channels == 3 && to[0] == 1, fromGrey = channels == 1 && to[0] > 1;
  if (channels != to[0] && !toGrey && !fromGrey) {
    throw std::runtime_error("the images have " + std::to_string(channels) +
                             " channels but the model takes " + std::to_string(to[0]) +
                             " — choose images with 1 or " + std::to_string(to[0]) + " channels");
  }
  // Channels are dropped before scaling and added after it: scaling runs on as few as it can.
  if (toGrey) {  // ITU-R 601 luminance, as PIL's convert("L")
    images = (images * torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1}))
                 .sum(1, /*keepdim=*/true);
  }
  const auto scale = [](const torch::Tensor& x, std::int64_t h, std::int64_t w) {
    if (x.size(2) == h && x.size(3) == w) return x;
    const bool shrinking = h < x.size(2) || w < x.size(3);
    // Antialiased when shrinking, as torchvision's Resize on tensors and PIL images.
    return shrinking ? at::_upsample_bilinear2d_aa(x.contiguous(), {h, w}, false)
                     : at::upsample_bilinear2d(x.contiguous(), {h, w}, false);
  };
  if (to[1] > 0) {  // else channels only
    const auto h = to[1], w = to[2];
    if (resize >= std::max(h, w)) {  // shorter side to `resize`, then the centre H×W
      const auto ih = images.size(2), iw = images.size(3);
      const auto sh = ih <= iw ? resize : (ih * resize + iw / 2) / iw;
      const auto sw = ih <= iw ? (iw * resize + ih / 2) / ih : resize;
      images = scale(images, sh, sw).narrow(2, (sh - h) / 2, h).narrow(3, (sw - w) / 2, w);
    } else {
      images = scale(images, h, w);
    }
  }
  if (fromGrey) images = images.expand({images.size(0), to[0], images.size(2), images.size(3)});
  return images.contiguous();
}

}  // namespace

Batch BatchStream::gather(const std::vector<std::size_t>& order, std::size_t start,
                          std::size_t count, bool pin) const {
  const Dataset& data = *m_data;
  const std::size_t itemSize = data.itemSize();
  std::vector<std::int64_t> shape{static_cast<std::int64_t>(count)};
  shape.insert(shape.end(), data.itemShape.begin(), data.itemShape.end());
  const std::size_t channels = data.isImage() ? static_cast<std::size_t>(data.itemShape[0]) : 1;
  const std::size_t plane = data.isImage() ? itemSize / channels : itemSize;
  const bool fit = fitsImages();
  // Fitted images are normalised after fitting, per channel of the model's input.
  const bool normalise =
      !fit && !m_options.mean.empty() && m_options.mean.size() == m_options.std.size();

  auto inputs =
      torch::empty(shape, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(pin && !fit));
  const auto width = static_cast<std::int64_t>(data.targetNames.size());
  auto targets =
      data.isRegression()
          ? torch::empty({static_cast<std::int64_t>(count), width},
                         torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(pin))
          : torch::empty({static_cast<std::int64_t>(count)},
                         torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pin));
  float* in = inputs.data_ptr<float>();
  for (std::size_t b = 0; b < count; ++b) {
    const std::size_t index = order[start + b];
    const float* item = data.item(index);
    float* target = in + b * itemSize;
    if (normalise) {
      for (std::size_t c = 0; c < channels; ++c) {
        const std::size_t k =
            m_options.mean.size() == 1 ? 0 : std::min(c, m_options.mean.size() - 1);
        const auto mean = static_cast<float>(m_options.mean[k]);
        const auto scale = static_cast<float>(1.0 / m_options.std[k]);
        for (std::size_t p = 0; p < plane; ++p)
          target[c * plane + p] = (item[c * plane + p] - mean) * scale;
      }
    } else {
      std::copy(item, item + itemSize, target);
    }
    if (data.isRegression()) {
      const float* from = data.targets.data() + index * static_cast<std::size_t>(width);
      std::copy(from, from + width,
                targets.data_ptr<float>() + b * static_cast<std::size_t>(width));
    } else {
      targets.data_ptr<std::int64_t>()[b] = data.labels[index];
    }
  }
  if (fit) {
    inputs = fitImages(inputs, m_options.fitTo, m_options.resize);
    if (!m_options.mean.empty() && m_options.mean.size() == m_options.std.size()) {
      const auto c = m_options.fitTo[0];
      std::vector<float> mean(static_cast<std::size_t>(c)), invStd(static_cast<std::size_t>(c));
      for (std::int64_t k = 0; k < c; ++k) {
        const auto from =
            std::min<std::size_t>(static_cast<std::size_t>(k), m_options.mean.size() - 1);
        mean[static_cast<std::size_t>(k)] = static_cast<float>(m_options.mean[from]);
        invStd[static_cast<std::size_t>(k)] = static_cast<float>(1.0 / m_options.std[from]);
      }
      inputs = (inputs - torch::tensor(mean).view({1, c, 1, 1})) *
               torch::tensor(invStd).view({1, c, 1, 1});
    }
    if (pin) inputs = inputs.pin_memory();
  }
  return Batch{std::move(inputs), std::move(targets)};
}

void BatchStream::fill(const std::vector<std::size_t>& order, Queue& queue) const {
  const bool pin = m_options.device.is_cuda();
  for (std::size_t start = 0; start < order.size(); start += m_options.batchSize) {
    const std::size_t count = std::min(m_options.batchSize, order.size() - start);
    if (count < m_options.batchSize && m_options.dropLast) break;
    Batch batch = gather(order, start, count, pin);
    std::unique_lock lock(queue.mutex);
    queue.changed.wait(lock,
                       [&] { return queue.stopped || queue.ready.size() < m_options.prefetch; });
    if (queue.stopped) return;
    queue.ready.push_back(std::move(batch));
    queue.changed.notify_all();
  }
  std::lock_guard lock(queue.mutex);
  queue.finished = true;
  queue.changed.notify_all();
}

std::optional<Batch> BatchStream::next() {
  if (m_epochOrder.defined() && !m_queue) {
    const auto total = static_cast<std::size_t>(m_epochOrder.size(0));
    const std::size_t count = std::min(m_options.batchSize, total - std::min(total, m_cursor));
    if (count == 0 || (count < m_options.batchSize && m_options.dropLast)) return std::nullopt;
    const auto positions = m_epochOrder.narrow(0, static_cast<std::int64_t>(m_cursor),
                                               static_cast<std::int64_t>(count));
    m_cursor += count;
    return Batch{m_residentInputs.index_select(0, positions),
                 m_residentTargets.index_select(0, positions)};
  }
  if (!m_options.background) {
    const std::size_t count = std::min(
        m_options.batchSize, m_callerOrder.size() - std::min(m_callerOrder.size(), m_cursor));
    if (count == 0 || (count < m_options.batchSize && m_options.dropLast)) return std::nullopt;
    Batch batch = gather(m_callerOrder, m_cursor, count, /*pin=*/false);
    m_cursor += count;
    if (!m_options.device.is_cpu()) {
      batch.inputs = batch.inputs.to(m_options.device);
      batch.targets = batch.targets.to(m_options.device);
    }
    return batch;
  }
  if (!m_queue) return std::nullopt;
  Batch batch;
  {
    std::unique_lock lock(m_queue->mutex);
    m_queue->changed.wait(lock, [&] { return !m_queue->ready.empty() || m_queue->finished; });
    if (m_queue->ready.empty()) {
      if (m_queue->error) std::rethrow_exception(m_queue->error);
      return std::nullopt;
    }
    batch = std::move(m_queue->ready.front());
    m_queue->ready.pop_front();
  }
  m_queue->changed.notify_all();
  if (!m_options.device.is_cpu()) {
    batch.inputs = batch.inputs.to(m_options.device, /*non_blocking=*/true);
    batch.targets = batch.targets.to(m_options.device, /*non_blocking=*/true);
  }
  return batch;
}

}  // namespace scalpel
