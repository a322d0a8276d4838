#include "data/dataset.h"

#include <algorithm>

namespace scalpel {

std::size_t Dataset::itemSize() const {
  std::size_t size = 1;
  for (auto dim : itemShape) size *= static_cast<std::size_t>(dim);
  return itemShape.empty() ? 0 : size;
}

std::vector<std::size_t> Dataset::classCounts() const {
  std::vector<std::size_t> counts(classNames.size(), 0);
  for (int label : labels) {
    if (label >= 0 && static_cast<std::size_t>(label) < counts.size()) ++counts[static_cast<std::size_t>(label)];
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
      out.targets.insert(out.targets.end(), targets.begin() + static_cast<std::ptrdiff_t>(i * width),
                         targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * width));
    } else {
      out.labels.push_back(labels[i]);
    }
  }
  return out;
}

}  // namespace scalpel
