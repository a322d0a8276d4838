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

Dataset Dataset::subset(const std::vector<std::size_t>& indices) const {
  Dataset out;
  out.name = name;
  out.itemShape = itemShape;
  out.classNames = classNames;
  out.values.reserve(indices.size() * itemSize());
  out.labels.reserve(indices.size());
  for (auto i : indices) {
    out.values.insert(out.values.end(), item(i), item(i) + itemSize());
    out.labels.push_back(labels[i]);
  }
  return out;
}

}  // namespace scalpel
