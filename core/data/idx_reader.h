#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

// One array from an IDX file (the MNIST format): big-endian header, unsigned bytes.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

// Parses the (already decompressed) bytes of an IDX file. `name` is used in messages.
// Returns "" or what is wrong, with the byte offset.
std::string parseIdx(const std::string& bytes, const std::string& name, IdxArray& out);

// Decompresses gzip data; returns "" or what is wrong. `name` is used in messages.
std::string gunzip(const std::string& compressed, const std::string& name, std::string& out);

// Reads a file whole, gunzipping it when it starts with the gzip magic. Returns "" or an error.
std::string readMaybeGzipped(const std::filesystem::path& path, std::string& out);

// An images file (N×H×W or N×C×H×W) and a labels file (N) as a data set.
DataLoadResult readIdx(const std::filesystem::path& images, const std::filesystem::path& labels,
                       std::vector<std::string> classNames = {});

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// $SCALPEL_FASHION_MNIST_DIR when set (e.g. a copy on a machine without the Debian package),
// else kFashionMnistDir.
std::filesystem::path fashionMnistDir();
const std::vector<std::string>& fashionMnistClassNames();
// Fashion-MNIST from the Debian package dataset-fashion-mnist; split is "train" or "test".
DataLoadResult readFashionMnist(const std::string& split,
                                const std::filesystem::path& folder = fashionMnistDir());

}  // namespace scalpel
