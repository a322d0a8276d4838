#include "model/channel_sums.h"

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace scalpel {

namespace {

// An activation seen as `items` × `channels` × a contiguous run of `length` values (one channel
// of one item): [N, C, H·W] for images, [N·T, C, 1] for tokens.
struct Runs {
  std::int64_t items = 1;
  std::int64_t channels = 1;
  std::int64_t length = 1;
};

Runs runsOf(const torch::Tensor& x) {
  if (x.dim() < 2) return {1, 1, x.numel()};
  if (x.dim() == 3) return {x.size(0) * x.size(1), x.size(2), 1};  // [N, T, C]: channels last
  std::int64_t length = 1;
  for (std::int64_t d = 2; d < x.dim(); ++d) length *= x.size(d);
  return {x.size(0), x.size(1), length};
}

// Below this many values a task is not worth handing to another thread. Inside a forward ATen's
// threads are awake (the convolution before used them): on the 2-core development machine a
// demo activation of 100×32×7×7 just written by a convolution took 17-20 µs on one thread and
// 13-17 µs on two; 2^18 values per task (left to one thread) measured the same or slower.
constexpr std::int64_t kValuesPerTask = 65536;

// Accumulators in vector registers (GCC/Clang vector extension; at -O2 plain loops over lanes are
// not vectorised): `Bytes`-wide vectors (16: SSE, 32: AVX), four each for Σx and Σx², so
// consecutive additions do not wait on one another.
// The functions taking or returning vectors are always inlined, so no call passes a 32-byte vector
// by value: GCC's -Wpsabi note about that ABI does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <typename T, int Bytes>
struct Lanes {
  typedef T Vector __attribute__((vector_size(Bytes)));
  static constexpr std::int64_t kWidth = Bytes / sizeof(T);  // values per vector
  static constexpr std::int64_t kStep = 4 * kWidth;          // values per loop iteration
  static inline __attribute__((always_inline)) Vector load(const T* p) {
    Vector v;
    std::memcpy(&v, p, sizeof v);  // unaligned: a run starts anywhere
    return v;
  }
};

// Σx and Σx² of channels [first, last): for each channel its run in every item (`C·L` values
// apart), in vector registers throughout. Each lane adds at most kFlushEvery values in the
// activation's own precision before float64 takes them over, which bounds float32's rounding
// error (~1e-7 relative per addition) however large the batch. (Item by item in memory order
// instead was 2-3× slower on short runs: every run then pays for its own float64 sums.) Always
// inlined, so that it is compiled for the instruction set of the function that calls it.
template <typename T, int Bytes>
inline __attribute__((always_inline)) void addChannelRuns(const T* x, const Runs& r,
                                                          std::int64_t first, std::int64_t last,
                                                          double* sums, double* squares) {
  using L = Lanes<T, Bytes>;
  using Vector = typename L::Vector;
  constexpr std::int64_t kFlushEvery = 1024 * L::kStep;
  for (std::int64_t c = first; c < last; ++c) {
    Vector s0{}, s1{}, s2{}, s3{}, q0{}, q1{}, q2{}, q3{};
    double tailSum = 0,
           tailSquare = 0;  // the values after a run's last whole vector: scalar anyway
    double total = 0, totalSquare = 0;
    std::int64_t pending = 0;
    const auto flush = [&]() __attribute__((always_inline)) {
      const Vector s = (s0 + s1) + (s2 + s3), q = (q0 + q1) + (q2 + q3);
      double partial = tailSum, partialSquare = tailSquare;
      for (std::int64_t k = 0; k < L::kWidth; ++k) {
        partial += s[k];
        partialSquare += q[k];
      }
      total += partial;
      totalSquare += partialSquare;
      s0 = s1 = s2 = s3 = q0 = q1 = q2 = q3 = Vector{};
      tailSum = tailSquare = 0;
      pending = 0;
    };
    // Four independent accumulator pairs, so consecutive additions do not wait on one another.
    const auto addFour = [&](Vector v0, Vector v1, Vector v2, Vector v3)
        __attribute__((always_inline)) {
      s0 += v0;
      s1 += v1;
      s2 += v2;
      s3 += v3;
      q0 += v0 * v0;
      q1 += v1 * v1;
      q2 += v2 * v2;
      q3 += v3 * v3;
    };
    // The values after a run's last whole vector, in float64.
    const auto addTail = [&](double v) __attribute__((always_inline)) {
      tailSum += v;
      tailSquare += v * v;
    };
    std::int64_t n = 0;
    if (r.length < 2 * L::kStep) {
      // Short runs (a 7×7 map is 49 values): four items at a time, one accumulator pair each, so
      // that the additions of one run do not wait on those of the run before. Each lane still
      // adds at most kFlushEvery / kStep values between flushes.
      const std::int64_t stride = r.channels * r.length;
      for (; n + 4 <= r.items; n += 4) {
        if (pending + 4 * r.length > kFlushEvery) flush();
        const T* p = x + (n * r.channels + c) * r.length;
        std::int64_t i = 0;
        for (; i + L::kWidth <= r.length; i += L::kWidth) {
          addFour(L::load(p + i), L::load(p + stride + i), L::load(p + 2 * stride + i),
                  L::load(p + 3 * stride + i));
        }
        for (; i < r.length; ++i) {
          for (std::int64_t j = 0; j < 4; ++j) addTail(p[j * stride + i]);
        }
        pending += 4 * r.length;
      }
    }
    for (; n < r.items; ++n) {
      const T* p = x + (n * r.channels + c) * r.length;
      for (std::int64_t left = r.length; left > 0;) {
        const std::int64_t take = std::min(left, kFlushEvery - pending);
        std::int64_t i = 0;
        for (; i + L::kStep <= take; i += L::kStep) {
          addFour(L::load(p + i), L::load(p + i + L::kWidth), L::load(p + i + 2 * L::kWidth),
                  L::load(p + i + 3 * L::kWidth));
        }
        for (; i + L::kWidth <= take; i += L::kWidth) {
          const Vector v = L::load(p + i);
          s0 += v;
          q0 += v * v;
        }
        for (; i < take; ++i) addTail(p[i]);
        p += take;
        left -= take;
        pending += take;
        if (pending == kFlushEvery) flush();
      }
    }
    flush();
    sums[c] = total;
    squares[c] = totalSquare;
  }
}

#pragma GCC diagnostic pop

#if defined(__x86_64__) && defined(__GNUC__)
// The same with 32-byte AVX vectors, for the CPUs that have them (nearly all x86-64 since 2013;
// Debian builds for the 2003 baseline, SSE2).
template <typename T>
__attribute__((target("avx2"))) void addChannelRunsAvx(const T* x, const Runs& r,
                                                       std::int64_t first, std::int64_t last,
                                                       double* sums, double* squares) {
  addChannelRuns<T, 32>(x, r, first, last, sums, squares);
}

bool hasAvx() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

// Channels with runs ([N, C, H·W], or one long run): each thread sums a range of channels, so
// there are no partial sums to merge and every run gives the same result.
template <typename T>
void sumChannelRuns(const T* x, const Runs& r, double* sums, double* squares) {
  const std::int64_t perChannel = std::max<std::int64_t>(1, r.items * r.length);
  at::parallel_for(0, r.channels, std::max<std::int64_t>(1, kValuesPerTask / perChannel),
                   [&](std::int64_t first, std::int64_t last) {
#if defined(__x86_64__) && defined(__GNUC__)
                     if (hasAvx()) return addChannelRunsAvx(x, r, first, last, sums, squares);
#endif
                     addChannelRuns<T, 16>(x, r, first, last, sums, squares);
                   });
}

// Channels last ([rows, C], one value per run): each row adds to every channel, which vectorises
// across channels; rows are split into a fixed number of chunks whose float64 partial sums are
// merged in order, so a given thread count always gives the same result.
// `out`: the C sums, then the C sums of squares.
template <typename T>
void sumChannelRows(const T* x, const Runs& r, double* out) {
  const std::int64_t c = r.channels;
  const std::int64_t chunks =
      std::clamp<std::int64_t>(r.items * c / kValuesPerTask, 1, std::max(1, at::get_num_threads()));
  std::vector<double> partial(static_cast<std::size_t>(chunks * 2 * c), 0.0);
  at::parallel_for(0, chunks, 1, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t chunk = first; chunk < last; ++chunk) {
      double* sum = partial.data() + chunk * 2 * c;
      double* square = sum + c;
      const std::int64_t end = (chunk + 1) * r.items / chunks;
      for (std::int64_t row = chunk * r.items / chunks; row < end; ++row) {
        const T* p = x + row * c;
        for (std::int64_t k = 0; k < c; ++k) {
          const double v = p[k];
          sum[k] += v;
          square[k] += v * v;
        }
      }
    }
  });
  std::fill(out, out + 2 * c, 0.0);
  for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
    const double* part = partial.data() + chunk * 2 * c;
    for (std::int64_t k = 0; k < 2 * c; ++k) out[k] += part[k];
  }
}

template <typename T>
void sumOnCpu(const torch::Tensor& x, const Runs& r, double* out) {
  const T* data = x.data_ptr<T>();
  if (r.length == 1 && r.channels > 1) {
    sumChannelRows(data, r, out);
  } else {
    sumChannelRuns(data, r, out, out + r.channels);
  }
}

}  // namespace

torch::Tensor channelSumsByAten(const torch::Tensor& activation) {
  torch::NoGradGuard noGrad;
  const Runs runs = runsOf(activation);
  const auto type = activation.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  // One reduction per sum; Σx² as a squared 2-norm (no squared copy).
  const auto rows = activation.to(type).reshape({runs.items, runs.channels, runs.length});
  const std::vector<std::int64_t> runDims{0, 2};
  const auto sums = rows.sum(runDims).to(torch::kFloat64);
  const auto squares = at::linalg_vector_norm(rows, 2, runDims).to(torch::kFloat64).square();
  const double count = static_cast<double>(runs.items * runs.length);
  return torch::cat(std::vector<torch::Tensor>{sums, squares, sums.new_full({1}, count)});
}

torch::Tensor channelSums(const torch::Tensor& activation) {
  if (!activation.device().is_cpu()) return channelSumsByAten(activation);
  torch::NoGradGuard noGrad;
  const Runs runs = runsOf(activation);
  const double count = static_cast<double>(runs.items * runs.length);
  const auto type = activation.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto x = activation.to(type).contiguous();
  auto result = torch::empty({2 * runs.channels + 1}, torch::dtype(torch::kFloat64));
  double* out = result.data_ptr<double>();
  if (type == torch::kFloat64) {
    sumOnCpu<double>(x, runs, out);
  } else {
    sumOnCpu<float>(x, runs, out);
  }
  out[2 * runs.channels] = count;
  return result;
}

namespace {

// The values of a small per-channel tensor as float64; `fallback` where it is absent.
std::vector<double> perChannel(const c10::optional<torch::Tensor>& values, std::int64_t channels,
                               double fallback) {
  if (!values || !values->defined())
    return std::vector<double>(static_cast<std::size_t>(channels), fallback);
  if (values->is_cpu() && values->is_contiguous() && values->scalar_type() == torch::kFloat32) {
    const float* p = values->data_ptr<float>();  // BatchNorm's usual type: no conversion op
    return std::vector<double>(p, p + values->numel());
  }
  const auto doubles = values->to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(doubles.data_ptr<double>(),
                             doubles.data_ptr<double>() + doubles.numel());
}

bool hasChannels(const c10::optional<torch::Tensor>& values, std::int64_t channels) {
  return !values || !values->defined() || values->numel() == channels;
}

}  // namespace

torch::Tensor batchNormOutputSums(const torch::Tensor& output, const torch::Tensor& inputSums,
                                  const c10::optional<torch::Tensor>& runningMean,
                                  const c10::optional<torch::Tensor>& runningVar,
                                  const c10::optional<torch::Tensor>& weight,
                                  const c10::optional<torch::Tensor>& bias, bool training,
                                  double eps) {
  const std::int64_t c = output.dim() >= 2 ? output.size(1) : 0;
  const bool hasRunningStats =
      runningMean && runningMean->defined() && runningVar && runningVar->defined();
  const bool derivable = output.device().is_cpu() && (output.dim() == 2 || output.dim() >= 4) &&
                         (training || hasRunningStats) && inputSums.device().is_cpu() &&
                         inputSums.scalar_type() == torch::kFloat64 && inputSums.dim() == 1 &&
                         inputSums.numel() == 2 * c + 1 && hasChannels(runningMean, c) &&
                         hasChannels(runningVar, c) && hasChannels(weight, c) &&
                         hasChannels(bias, c);
  if (!derivable) return channelSums(output);
  const auto in = inputSums.contiguous();
  const double* sums = in.data_ptr<double>();
  const double n = sums[2 * c];
  if (!(n > 0)) return channelSums(output);
  // In training the layer normalises by the batch's own statistics (the input's: the variance
  // biased, as BatchNorm's), else by its running ones.
  const auto runningMeans = training ? std::vector<double>() : perChannel(runningMean, c, 0);
  const auto runningVars = training ? std::vector<double>() : perChannel(runningVar, c, 1);
  const auto scale = perChannel(weight, c, 1), shift = perChannel(bias, c, 0);
  auto result = torch::empty({2 * c + 1}, torch::dtype(torch::kFloat64));
  double* out = result.data_ptr<double>();
  for (std::int64_t k = 0; k < c; ++k) {
    const double inputMean = sums[k] / n;
    const double inputSpread = std::max(0.0, sums[c + k] - sums[k] * inputMean);  // n·var(x)
    const double mean = training ? inputMean : runningMeans[k];
    const double variance = training ? inputSpread / n : runningVars[k];
    const double a = scale[k] / std::sqrt(variance + eps), b = shift[k] - a * mean;
    // Through the moments, so Σy² keeps the spread's digits: Σy² = n·var(y) + (Σy)²/n.
    const double outputMean = a * inputMean + b;
    out[k] = n * outputMean;
    out[c + k] = a * a * inputSpread + n * outputMean * outputMean;
  }
  out[2 * c] = n;
  return result;
}

c10::Symbol channelSumsOperator() {
  static const c10::Symbol symbol = c10::Symbol::fromQualString("scalpel::channel_sums");
  return symbol;
}

c10::Symbol batchNormOutputSumsOperator() {
  static const c10::Symbol symbol = c10::Symbol::fromQualString("scalpel::batch_norm_output_sums");
  return symbol;
}

}  // namespace scalpel

TORCH_LIBRARY(scalpel, m) {
  m.def("channel_sums(Tensor x) -> Tensor", &scalpel::channelSums);
  m.def(
      "batch_norm_output_sums(Tensor output, Tensor input_sums, Tensor? running_mean, Tensor? "
      "running_var, "
      "Tensor? weight, Tensor? bias, bool training, float eps) -> Tensor",
      &scalpel::batchNormOutputSums);
}
