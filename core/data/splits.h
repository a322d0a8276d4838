#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace scalpel {

// Item indices of a train / validation / test split. Disjoint; together they cover the data set.
struct Split {
  std::vector<std::size_t> train;
  std::vector<std::size_t> validation;
  std::vector<std::size_t> test;
};

// Stratified by label: each class is divided in the given fractions (test gets the rest), so
// every part keeps the class balance. The same labels and seed always give the same split.
Split stratifiedSplit(const std::vector<int>& labels, double trainFraction,
                      double validationFraction, std::uint64_t seed);

// The paper's protocol: `trainPerClass` items of each class to train, `validationPerClass` to
// validate, the rest to test (a class with fewer items gives what it has, train first).
Split stratifiedSplitPerClass(const std::vector<int>& labels, std::size_t trainPerClass,
                              std::size_t validationPerClass, std::uint64_t seed);

// A seeded Fisher–Yates shuffle. Portable: the same seed gives the same order with any standard
// library (std::shuffle's use of the generator is unspecified).
void seededShuffle(std::vector<std::size_t>& items, std::uint64_t seed);

// Process `index`'s share of `order` when `count` processes split it (PyTorch's
// DistributedSampler): every count-th item from position `index`. `pad`: the order is first
// extended by its own beginning to a multiple of `count`, so every share has the same length
// (training: every process takes the same number of steps); without, the shares are disjoint
// and cover the order exactly once (evaluation: sums over the shares are sums over all).
// Consecutive batches of b items from each share together hold the original order's
// consecutive batches of count·b items.
std::vector<std::size_t> shareOf(const std::vector<std::size_t>& order, std::size_t index,
                                 std::size_t count, bool pad);

}  // namespace scalpel
