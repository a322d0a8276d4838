#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

// Where in the network a shift acts (METHOD.md): on the pixels, on which sub-populations make up
// a class, or on how outputs map to labels.
enum class ShiftLevel { Input, Feature, Output };

struct ShiftInfo {
  std::string name;  // what the CLI and the UI call it, e.g. "gaussian-noise"
  ShiftLevel level;
  std::string description;
  bool usesSeverity;  // 1 (mild) … 5 (strong)
  // Other spellings, e.g. ImageNet-C's and CIFAR-10-C's "jpeg_compression" (underscores, spaces
  // and case never matter: "Gaussian_Noise" is gaussian-noise).
  std::vector<std::string> aliases = {};
};

// Every shift Scalpel can make, input-level first.
const std::vector<ShiftInfo>& shiftCatalogue();
// By name or alias; null when unknown.
const ShiftInfo* findShift(const std::string& name);
std::string shiftLevelName(ShiftLevel level);

// Applies an input-level corruption or an output-level shift to a copy of `data`. Deterministic
// for a seed (each item's randomness depends only on the seed and its index). Sub-population
// shifts need groups: use subpopulationShift(). Fails with a message for unknown names, bad
// severities, or image corruptions on tabular data.
DataLoadResult applyShift(const Dataset& data, const std::string& name, int severity,
                          std::uint64_t seed);

// Super-classes made of sub-classes; the source data holds each group's first member, the
// target its other members, both labelled by group.
struct SuperClasses {
  std::vector<std::string> names;
  std::vector<std::vector<int>> groups;
};
// Reads {"names": [...], "groups": [[0, 6], ...]}; returns "" or what is wrong.
std::string readSuperClasses(const std::filesystem::path& file, SuperClasses& out);
struct SubpopulationData {
  Dataset source;
  Dataset target;
};
std::string subpopulationShift(const Dataset& data, const SuperClasses& classes,
                               SubpopulationData& out);

// The class each label moves to under "label-permutation": a derangement (no class keeps its
// label), fixed by the seed.
std::vector<int> labelDerangement(int classes, std::uint64_t seed);

// Peak signal-to-noise ratio in dB of `shifted` against `clean` (same shape, values in [0, 1]).
double psnr(const float* clean, const float* shifted, std::size_t count);

}  // namespace scalpel
