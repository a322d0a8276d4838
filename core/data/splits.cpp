#include "data/splits.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

namespace scalpel {

namespace {

// Indices of each class, each list shuffled with a seed derived from the class, so adding a
// class does not reshuffle the others.
std::map<int, std::vector<std::size_t>> shuffledByClass(const std::vector<int>& labels,
                                                        std::uint64_t seed) {
  std::map<int, std::vector<std::size_t>> byClass;
  for (std::size_t i = 0; i < labels.size(); ++i) byClass[labels[i]].push_back(i);
  for (auto& [label, indices] : byClass) {
    seededShuffle(indices, seed * 1000003ULL + static_cast<std::uint64_t>(label));
  }
  return byClass;
}

template <typename Counts>
Split splitWith(const std::vector<int>& labels, std::uint64_t seed, Counts counts) {
  Split split;
  for (auto& [label, indices] : shuffledByClass(labels, seed)) {
    const auto [train, validation] = counts(indices.size());
    const auto t = std::min(train, indices.size());
    const auto v = std::min(validation, indices.size() - t);
    split.train.insert(split.train.end(), indices.begin(),
                       indices.begin() + static_cast<std::ptrdiff_t>(t));
    split.validation.insert(split.validation.end(),
                            indices.begin() + static_cast<std::ptrdiff_t>(t),
                            indices.begin() + static_cast<std::ptrdiff_t>(t + v));
    split.test.insert(split.test.end(), indices.begin() + static_cast<std::ptrdiff_t>(t + v),
                      indices.end());
  }
  // Interleave classes within each part, deterministically.
  seededShuffle(split.train, seed + 1);
  seededShuffle(split.validation, seed + 2);
  seededShuffle(split.test, seed + 3);
  return split;
}

}  // namespace

void seededShuffle(std::vector<std::size_t>& items, std::uint64_t seed) {
  std::mt19937_64 generator(seed);
  for (std::size_t i = items.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(generator() % i);
    std::swap(items[i - 1], items[j]);
  }
}

Split stratifiedSplit(const std::vector<int>& labels, double trainFraction,
                      double validationFraction, std::uint64_t seed) {
  return splitWith(labels, seed, [&](std::size_t n) {
    const auto train =
        static_cast<std::size_t>(std::llround(trainFraction * static_cast<double>(n)));
    const auto validation =
        static_cast<std::size_t>(std::llround(validationFraction * static_cast<double>(n)));
    return std::pair{train, validation};
  });
}

Split stratifiedSplitPerClass(const std::vector<int>& labels, std::size_t trainPerClass,
                              std::size_t validationPerClass, std::uint64_t seed) {
  return splitWith(labels, seed, [&](std::size_t) {
    return std::pair{trainPerClass, validationPerClass};
  });
}

std::vector<std::size_t> shareOf(const std::vector<std::size_t>& order, std::size_t index,
                                 std::size_t count, bool pad) {
  if (count <= 1) return order;
  const std::size_t length = pad ? (order.size() + count - 1) / count * count : order.size();
  std::vector<std::size_t> share;
  share.reserve(length / count + 1);
  for (std::size_t position = index; position < length && !order.empty(); position += count)
    share.push_back(order[position % order.size()]);
  return share;
}

}  // namespace scalpel
