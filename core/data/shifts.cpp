#include "data/shifts.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "data/splits.h"

namespace scalpel {

namespace {

using Generator = std::mt19937_64;

// Per-severity parameters, tuned so severity 1 is visible and 5 is hard on 28×28 images, in the
// spirit of ImageNet-C.
constexpr std::array<double, 5> kGaussianSigma{0.08, 0.12, 0.18, 0.26, 0.38};
constexpr std::array<double, 5> kShotPhotons{60, 25, 12, 5, 3};
constexpr std::array<double, 5> kImpulseAmount{0.03, 0.06, 0.09, 0.17, 0.27};
constexpr std::array<double, 5> kBlurSigma{0.5, 0.75, 1.0, 1.25, 1.6};
constexpr std::array<int, 5> kMotionLength{3, 5, 7, 9, 11};
constexpr std::array<double, 5> kContrast{0.4, 0.3, 0.2, 0.1, 0.05};
constexpr std::array<double, 5> kBrightness{0.1, 0.2, 0.3, 0.4, 0.5};
constexpr std::array<double, 5> kPixelate{0.6, 0.5, 0.4, 0.3, 0.25};
constexpr std::array<int, 5> kJpegQuality{25, 18, 15, 10, 7};
constexpr std::array<double, 5> kPriorRatio{0.5, 0.25, 0.1, 0.05, 0.02};

struct Image {
  float* pixels;
  std::int64_t channels, height, width;
  std::size_t size() const { return static_cast<std::size_t>(channels * height * width); }
  float& at(std::int64_t c, std::int64_t y, std::int64_t x) {
    return pixels[(c * height + y) * width + x];
  }
};

void clip(Image image) {
  for (std::size_t i = 0; i < image.size(); ++i)
    image.pixels[i] = std::clamp(image.pixels[i], 0.0f, 1.0f);
}

void gaussianNoise(Image image, double sigma, Generator& generator) {
  std::normal_distribution<float> noise(0.0f, static_cast<float>(sigma));
  for (std::size_t i = 0; i < image.size(); ++i) image.pixels[i] += noise(generator);
}

void shotNoise(Image image, double photons, Generator& generator) {
  for (std::size_t i = 0; i < image.size(); ++i) {
    std::poisson_distribution<int> count(std::max(0.0, image.pixels[i] * photons));
    image.pixels[i] = static_cast<float>(count(generator) / photons);
  }
}

void impulseNoise(Image image, double amount, Generator& generator) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (std::size_t i = 0; i < image.size(); ++i) {
    const double u = uniform(generator);
    if (u < amount / 2)
      image.pixels[i] = 0.0f;
    else if (u < amount)
      image.pixels[i] = 1.0f;
  }
}

// Convolves every channel with `kernel` (offsets and weights), clamping at the borders.
struct Tap {
  int dy, dx;
  float weight;
};
void convolve(Image image, const std::vector<Tap>& kernel) {
  std::vector<float> out(image.size());
  for (std::int64_t c = 0; c < image.channels; ++c) {
    for (std::int64_t y = 0; y < image.height; ++y) {
      for (std::int64_t x = 0; x < image.width; ++x) {
        float sum = 0;
        for (const auto& tap : kernel) {
          const auto sy = std::clamp<std::int64_t>(y + tap.dy, 0, image.height - 1);
          const auto sx = std::clamp<std::int64_t>(x + tap.dx, 0, image.width - 1);
          sum += tap.weight * image.at(c, sy, sx);
        }
        out[static_cast<std::size_t>((c * image.height + y) * image.width + x)] = sum;
      }
    }
  }
  std::copy(out.begin(), out.end(), image.pixels);
}

void gaussianBlur(Image image, double sigma) {
  const int radius = static_cast<int>(std::ceil(3 * sigma));
  std::vector<Tap> kernel;
  float total = 0;
  for (int dy = -radius; dy <= radius; ++dy) {
    for (int dx = -radius; dx <= radius; ++dx) {
      const auto w = static_cast<float>(std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
      kernel.push_back({dy, dx, w});
      total += w;
    }
  }
  for (auto& tap : kernel) tap.weight /= total;
  convolve(image, kernel);
}

void motionBlur(Image image, int length, Generator& generator) {
  const double angle = std::uniform_real_distribution<double>(0, M_PI)(generator);
  std::vector<Tap> kernel;
  for (int i = 0; i < length; ++i) {
    const double t = i - (length - 1) / 2.0;
    kernel.push_back({static_cast<int>(std::lround(t * std::sin(angle))),
                      static_cast<int>(std::lround(t * std::cos(angle))),
                      1.0f / static_cast<float>(length)});
  }
  convolve(image, kernel);
}

void contrast(Image image, double factor) {
  const double mean = std::accumulate(image.pixels, image.pixels + image.size(), 0.0) /
                      static_cast<double>(image.size());
  for (std::size_t i = 0; i < image.size(); ++i) {
    image.pixels[i] = static_cast<float>((image.pixels[i] - mean) * factor + mean);
  }
}

void brightness(Image image, double delta) {
  for (std::size_t i = 0; i < image.size(); ++i) image.pixels[i] += static_cast<float>(delta);
}

void pixelate(Image image, double factor) {
  const auto small = [&](std::int64_t n) {
    return std::max<std::int64_t>(1, std::llround(n * factor));
  };
  const auto sh = small(image.height);
  const auto sw = small(image.width);
  std::vector<float> blocks(static_cast<std::size_t>(image.channels * sh * sw), 0.0f);
  std::vector<int> counts(blocks.size(), 0);
  for (std::int64_t c = 0; c < image.channels; ++c) {
    for (std::int64_t y = 0; y < image.height; ++y) {
      for (std::int64_t x = 0; x < image.width; ++x) {
        const auto b =
            static_cast<std::size_t>((c * sh + y * sh / image.height) * sw + x * sw / image.width);
        blocks[b] += image.at(c, y, x);
        ++counts[b];
      }
    }
  }
  for (std::int64_t c = 0; c < image.channels; ++c) {
    for (std::int64_t y = 0; y < image.height; ++y) {
      for (std::int64_t x = 0; x < image.width; ++x) {
        const auto b =
            static_cast<std::size_t>((c * sh + y * sh / image.height) * sw + x * sw / image.width);
        image.at(c, y, x) = blocks[b] / static_cast<float>(counts[b]);
      }
    }
  }
}

void jpeg(Image image, int quality) {
  const auto plane = static_cast<std::size_t>(image.height * image.width);
  std::vector<unsigned char> interleaved(image.size());
  for (std::size_t p = 0; p < plane; ++p) {
    for (std::int64_t c = 0; c < image.channels; ++c) {
      interleaved[p * static_cast<std::size_t>(image.channels) + static_cast<std::size_t>(c)] =
          static_cast<unsigned char>(std::lround(
              std::clamp(image.pixels[static_cast<std::size_t>(c) * plane + p], 0.0f, 1.0f) * 255));
    }
  }
  std::string encoded;
  stbi_write_jpg_to_func(
      [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<char*>(data),
                                                   static_cast<std::size_t>(size));
      },
      &encoded, static_cast<int>(image.width), static_cast<int>(image.height),
      static_cast<int>(image.channels), interleaved.data(), quality);
  int w = 0, h = 0, n = 0;
  stbi_uc* decoded = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(encoded.data()),
                                           static_cast<int>(encoded.size()), &w, &h, &n,
                                           static_cast<int>(image.channels));
  if (!decoded) return;  // cannot happen for an image stb just encoded; keep the pixels as they are
  for (std::size_t p = 0; p < plane; ++p) {
    for (std::int64_t c = 0; c < image.channels; ++c) {
      image.pixels[static_cast<std::size_t>(c) * plane + p] =
          decoded[p * static_cast<std::size_t>(image.channels) + static_cast<std::size_t>(c)] /
          255.0f;
    }
  }
  stbi_image_free(decoded);
}

Generator itemGenerator(std::uint64_t seed, std::size_t index) {
  return Generator(seed * 0x9E3779B97F4A7C15ULL + index + 1);
}

}  // namespace

const std::vector<ShiftInfo>& shiftCatalogue() {
  static const std::vector<ShiftInfo> catalogue{
      {"gaussian-noise", ShiftLevel::Input, "additive Gaussian pixel noise", true},
      {"shot-noise", ShiftLevel::Input, "Poisson (photon-count) noise", true},
      {"impulse-noise", ShiftLevel::Input, "salt-and-pepper pixels", true},
      {"gaussian-blur", ShiftLevel::Input, "Gaussian blur", true},
      {"motion-blur", ShiftLevel::Input, "blur along a random direction per image", true},
      {"contrast", ShiftLevel::Input, "contrast reduced towards each image's mean", true},
      {"brightness", ShiftLevel::Input, "brightness raised", true},
      {"pixelate", ShiftLevel::Input, "resolution reduced in blocks", true},
      {"jpeg", ShiftLevel::Input, "JPEG compression artefacts", true, {"jpeg-compression"}},
      {"subpopulation",
       ShiftLevel::Feature,
       "same super-classes, different sub-classes",
       false,
       {"sub-population"}},
      {"label-permutation", ShiftLevel::Output, "labels moved by a fixed derangement", false},
      {"class-prior", ShiftLevel::Output, "class frequencies skewed", true},
  };
  return catalogue;
}

const ShiftInfo* findShift(const std::string& name) {
  std::string spelled;  // lower case, words joined by '-'
  for (const unsigned char c : name) spelled += c == '_' || c == ' ' ? '-' : std::tolower(c);
  for (const auto& info : shiftCatalogue()) {
    if (info.name == spelled) return &info;
    for (const auto& alias : info.aliases) {
      if (alias == spelled) return &info;
    }
  }
  return nullptr;
}

std::string shiftLevelName(ShiftLevel level) {
  switch (level) {
    case ShiftLevel::Input:
      return "input-level";
    case ShiftLevel::Feature:
      return "feature-level";
    case ShiftLevel::Output:
      return "output-level";
  }
  return "?";
}

std::vector<int> labelDerangement(int classes, std::uint64_t seed) {
  // Sattolo's algorithm makes one cycle through all classes: no class maps to itself.
  std::vector<int> target(static_cast<std::size_t>(classes));
  std::iota(target.begin(), target.end(), 0);
  Generator generator(seed);
  for (int i = classes - 1; i > 0; --i) {
    const auto j = static_cast<int>(generator() % static_cast<std::uint64_t>(i));
    std::swap(target[static_cast<std::size_t>(i)], target[static_cast<std::size_t>(j)]);
  }
  return target;
}

DataLoadResult applyShift(const Dataset& data, const std::string& spelled, int severity,
                          std::uint64_t seed) {
  const ShiftInfo* info = findShift(spelled);
  if (!info) {
    std::string known;
    for (const auto& each : shiftCatalogue()) known += (known.empty() ? "" : ", ") + each.name;
    return DataLoadResult::failure("unknown shift '" + spelled + "' — choose one of: " + known +
                                   " (ImageNet-C's spellings, e.g. jpeg_compression, work too)");
  }
  const std::string& name = info->name;
  if (info->level == ShiftLevel::Feature) {
    return DataLoadResult::failure(
        "'" + name + "' needs super-classes: it splits the data into a source and a target set");
  }
  if (info->usesSeverity && (severity < 1 || severity > 5)) {
    return DataLoadResult::failure("severity " + std::to_string(severity) +
                                   " — choose 1 (mild) to 5 (strong)");
  }
  if (info->level == ShiftLevel::Output && data.isRegression()) {
    return DataLoadResult::failure("'" + name + "' changes class labels, but " + data.name +
                                   " has numeric targets (regression) — choose no shift");
  }
  if (info->level == ShiftLevel::Input && !data.isImage()) {
    return DataLoadResult::failure("'" + name + "' corrupts images, but " + data.name +
                                   " holds feature rows");
  }
  const auto s = static_cast<std::size_t>(severity - 1);
  DataLoadResult result;
  Dataset out;
  if (name == "label-permutation") {
    out = data;
    const auto target = labelDerangement(static_cast<int>(data.classNames.size()), seed);
    for (auto& label : out.labels) label = target[static_cast<std::size_t>(label)];
    std::string mapping = "labels moved:";
    for (std::size_t c = 0; c < target.size(); ++c)
      mapping += " " + std::to_string(c) + "→" + std::to_string(target[c]);
    result.notes.push_back(mapping);
  } else if (name == "class-prior") {
    // Classes ranked by a seeded shuffle keep ratio^(rank / (C − 1)) of their items.
    std::vector<std::size_t> order(data.classNames.size());
    std::iota(order.begin(), order.end(), 0);
    seededShuffle(order, seed);
    std::vector<std::vector<std::size_t>> byClass(data.classNames.size());
    for (std::size_t i = 0; i < data.size(); ++i)
      byClass[static_cast<std::size_t>(data.labels[i])].push_back(i);
    std::vector<std::size_t> keep;
    const double classes = std::max<double>(1.0, static_cast<double>(order.size()) - 1);
    for (std::size_t rank = 0; rank < order.size(); ++rank) {
      auto& items = byClass[order[rank]];
      seededShuffle(items, seed + 17 + order[rank]);
      const double fraction = std::pow(kPriorRatio[s], static_cast<double>(rank) / classes);
      const auto count = std::max<std::size_t>(
          items.empty() ? 0 : 1,
          static_cast<std::size_t>(std::llround(fraction * static_cast<double>(items.size()))));
      keep.insert(keep.end(), items.begin(),
                  items.begin() + static_cast<std::ptrdiff_t>(std::min(count, items.size())));
    }
    std::sort(keep.begin(), keep.end());
    out = data.subset(keep);
    result.notes.push_back("kept " + std::to_string(keep.size()) + " of " +
                           std::to_string(data.size()) + " items; the rarest class keeps " +
                           std::to_string(kPriorRatio[s] * 100) + "% of its items");
  } else {
    out = data;
    const std::size_t itemSize = data.itemSize();
    for (std::size_t i = 0; i < out.size(); ++i) {
      Image image{out.values.data() + i * itemSize, data.itemShape[0], data.itemShape[1],
                  data.itemShape[2]};
      auto generator = itemGenerator(seed, i);
      if (name == "gaussian-noise")
        gaussianNoise(image, kGaussianSigma[s], generator);
      else if (name == "shot-noise")
        shotNoise(image, kShotPhotons[s], generator);
      else if (name == "impulse-noise")
        impulseNoise(image, kImpulseAmount[s], generator);
      else if (name == "gaussian-blur")
        gaussianBlur(image, kBlurSigma[s]);
      else if (name == "motion-blur")
        motionBlur(image, kMotionLength[s], generator);
      else if (name == "contrast")
        contrast(image, kContrast[s]);
      else if (name == "brightness")
        brightness(image, kBrightness[s]);
      else if (name == "pixelate")
        pixelate(image, kPixelate[s]);
      else if (name == "jpeg")
        jpeg(image, kJpegQuality[s]);
      clip(image);
    }
  }
  out.name = data.name + " + " + name +
             (info->usesSeverity ? " (severity " + std::to_string(severity) + ")" : "");
  result.dataset = std::move(out);
  return result;
}

std::string readSuperClasses(const std::filesystem::path& file, SuperClasses& out) {
  std::ifstream in(file);
  if (!in) return file.string() + ": cannot open — check the path";
  try {
    const auto json = nlohmann::json::parse(in);
    SuperClasses parsed;
    parsed.names = json.at("names").get<std::vector<std::string>>();
    parsed.groups = json.at("groups").get<std::vector<std::vector<int>>>();
    if (parsed.names.size() != parsed.groups.size())
      return file.string() + ": 'names' and 'groups' differ in length";
    for (const auto& group : parsed.groups) {
      if (group.size() < 2)
        return file.string() + ": every group needs a source and at least one target sub-class";
    }
    out = std::move(parsed);
    return {};
  } catch (const nlohmann::json::exception& error) {
    return file.string() + ": " + error.what();
  }
}

std::string subpopulationShift(const Dataset& data, const SuperClasses& classes,
                               SubpopulationData& out) {
  std::vector<int> groupOf(data.classNames.size(), -1);
  std::vector<bool> isSource(data.classNames.size(), false);
  for (std::size_t g = 0; g < classes.groups.size(); ++g) {
    for (std::size_t m = 0; m < classes.groups[g].size(); ++m) {
      const int c = classes.groups[g][m];
      if (c < 0 || static_cast<std::size_t>(c) >= data.classNames.size()) {
        return "sub-class " + std::to_string(c) + " is not a class of " + data.name;
      }
      if (groupOf[static_cast<std::size_t>(c)] != -1)
        return "sub-class " + std::to_string(c) + " is in two groups";
      groupOf[static_cast<std::size_t>(c)] = static_cast<int>(g);
      isSource[static_cast<std::size_t>(c)] = m == 0;
    }
  }
  std::vector<std::size_t> source, target;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto c = static_cast<std::size_t>(data.labels[i]);
    if (groupOf[c] < 0) continue;
    (isSource[c] ? source : target).push_back(i);
  }
  out.source = data.subset(source);
  out.target = data.subset(target);
  for (Dataset* part : {&out.source, &out.target}) {
    for (auto& label : part->labels) label = groupOf[static_cast<std::size_t>(label)];
    part->classNames = classes.names;
  }
  out.source.name = data.name + " (sub-population source)";
  out.target.name = data.name + " (sub-population target)";
  return {};
}

double psnr(const float* clean, const float* shifted, std::size_t count) {
  double squared = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double d = clean[i] - shifted[i];
    squared += d * d;
  }
  const double mse = squared / static_cast<double>(count);
  return mse <= 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(1.0 / mse);
}

}  // namespace scalpel
