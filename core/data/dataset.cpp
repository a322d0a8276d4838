#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/fingerprint.h"

namespace scalpel {

std::size_t Dataset::itemSize() const {
  std::size_t size = 1;
  for (auto dim : itemShape) size *= static_cast<std::size_t>(dim);
  return itemShape.empty() ? 0 : size;
}

std::vector<std::size_t> Dataset::classCounts() const {
  std::vector<std::size_t> counts(classNames.size(), 0);
  for (int label : labels) {
    if (label >= 0 && static_cast<std::size_t>(label) < counts.size())
      ++counts[static_cast<std::size_t>(label)];
  }
  return counts;
}

std::vector<int> Dataset::strata() const {
  return isRegression() ? std::vector<int>(size(), 0) : labels;
}

Dataset Dataset::subset(const std::vector<std::size_t>& indices) const {
  Dataset out;
  out.name = name;
  out.itemShape = itemShape;
  out.classNames = classNames;
  out.targetNames = targetNames;
  const std::size_t width = targetNames.size();
  out.values.reserve(indices.size() * itemSize());
  out.labels.reserve(isRegression() ? 0 : indices.size());
  out.targets.reserve(indices.size() * width);
  for (auto i : indices) {
    out.values.insert(out.values.end(), item(i), item(i) + itemSize());
    if (isRegression()) {
      out.targets.insert(out.targets.end(),
                         targets.begin() + static_cast<std::ptrdiff_t>(i * width),
                         targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * width));
    } else {
      out.labels.push_back(labels[i]);
    }
  }
  return out;
}

std::string datasetFingerprint(const Dataset& data) {
  // Every list is preceded by its length, so moving a boundary (a value from one list to the
  // next, a character from one class name to the next) changes the fingerprint.
  Fingerprint hash;
  hash.addInteger(data.itemShape.size());
  for (auto dim : data.itemShape) hash.addInteger(static_cast<std::uint64_t>(dim));
  const auto addFloats = [&hash](const std::vector<float>& values) {
    hash.addInteger(values.size());
    for (float value : values) {
      std::uint32_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      hash.addInteger(bits, 4);
    }
  };
  const auto addNames = [&hash](const std::vector<std::string>& names) {
    hash.addInteger(names.size());
    for (const auto& name : names) {
      hash.addInteger(name.size());
      hash.add(name.data(), name.size());
    }
  };
  addFloats(data.values);
  hash.addInteger(data.labels.size());
  for (int label : data.labels) hash.addInteger(static_cast<std::uint32_t>(label), 4);
  addNames(data.classNames);
  // Regression targets only where there are some: classification fingerprints stay as they were
  // (sessions saved before regression existed still match their data).
  if (data.isRegression()) {
    addFloats(data.targets);
    addNames(data.targetNames);
  }
  return hash.text(data.size());
}

void channelStatistics(const Dataset& data, std::vector<double>& mean, std::vector<double>& stdev) {
  const std::size_t channels = data.isImage() ? static_cast<std::size_t>(data.itemShape[0]) : 1;
  const std::size_t plane = data.itemSize() / channels;
  mean.assign(channels, 0);
  stdev.assign(channels, 0);
  std::vector<double> squares(channels, 0);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const float* item = data.item(i);
    for (std::size_t c = 0; c < channels; ++c) {
      for (std::size_t p = 0; p < plane; ++p) {
        const double v = item[c * plane + p];
        mean[c] += v;
        squares[c] += v * v;
      }
    }
  }
  const double n = static_cast<double>(data.size() * plane);
  for (std::size_t c = 0; c < channels; ++c) {
    mean[c] /= n;
    stdev[c] = std::sqrt(std::max(1e-12, squares[c] / n - mean[c] * mean[c]));
  }
}

}  // namespace scalpel
