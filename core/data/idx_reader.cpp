#include "data/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace scalpel {

namespace fs = std::filesystem;

namespace {

std::string hex(std::uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << value;
  return out.str();
}

std::uint32_t bigEndian32(const std::string& bytes, std::size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

}  // namespace

std::string gunzip(const std::string& compressed, const std::string& name, std::string& out) {
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) return name + ": cannot start gzip decoding";
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  out.clear();
  if (compressed.size() >= 4) {
    // The gzip footer holds the decompressed size, but any file can claim anything there: trust
    // it only up to deflate's best ratio (about 1032:1).
    const auto* tail =
        reinterpret_cast<const unsigned char*>(compressed.data() + compressed.size() - 4);
    const std::size_t claimed =
        tail[0] | (tail[1] << 8) | (tail[2] << 16) | (static_cast<std::size_t>(tail[3]) << 24);
    out.reserve(std::min(claimed, compressed.size() * 1032));
  }
  char buffer[1 << 16];
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (status == Z_BUF_ERROR && stream.avail_in == 0) break;  // input ended early
  }
  const auto consumed = stream.total_in;
  inflateEnd(&stream);
  if (status != Z_STREAM_END) {
    return name + ": the gzip data is damaged or truncated (stopped after " +
           std::to_string(consumed) + " of " + std::to_string(compressed.size()) +
           " bytes) — download or copy the file again";
  }
  return {};
}

std::string readMaybeGzipped(const fs::path& path, std::string& out) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return path.string() + ": no such file — check the path";
  }
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::string bytes(static_cast<std::size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return path.string() + ": cannot read the file";
  }
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
      static_cast<unsigned char>(bytes[1]) == 0x8b) {
    return gunzip(bytes, path.string(), out);
  }
  out = std::move(bytes);
  return {};
}

std::string parseIdx(const std::string& bytes, const std::string& name, IdxArray& out) {
  if (bytes.size() < 4) {
    return name + ": too short for an IDX file (" + std::to_string(bytes.size()) +
           " bytes; the header alone is at least 8)";
  }
  const auto magic = bigEndian32(bytes, 0);
  const auto type = (magic >> 8) & 0xff;
  const auto rank = magic & 0xff;
  if ((magic >> 16) != 0 || type < 0x08 || type > 0x0e) {
    return name + ": not an IDX file (magic number " + hex(magic) +
           " at offset 0; IDX files start with 0x00000801, 0x00000803, ...)";
  }
  if (type != 0x08) {
    return name + ": IDX element type " + hex(type) +
           " is not supported (offset 2) — Scalpel reads unsigned-byte IDX files (type 0x08)";
  }
  if (rank < 1 || rank > 4) {
    return name + ": an IDX array of " + std::to_string(rank) +
           " dimensions (offset 3) — expected 1 to 4";
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  if (bytes.size() < header) {
    return name + ": truncated header (" + std::to_string(bytes.size()) + " bytes, needs " +
           std::to_string(header) + ")";
  }
  IdxArray array;
  std::uint64_t count = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    const auto size = bigEndian32(bytes, 4 + 4 * d);
    array.dims.push_back(size);
    count *= size;
    if (count > (std::uint64_t(1) << 34)) {
      return name + ": the header claims an impossibly large array (offset " +
             std::to_string(4 + 4 * d) + ")";
    }
  }
  if (bytes.size() - header < count) {
    return name + ": truncated — the header promises " + std::to_string(count) +
           " bytes of data from offset " + std::to_string(header) + ", the file has " +
           std::to_string(bytes.size() - header);
  }
  if (bytes.size() - header > count) {
    return name + ": " + std::to_string(bytes.size() - header - count) +
           " unexpected bytes after the data (offset " + std::to_string(header + count) +
           ") — is this the right file?";
  }
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  out = std::move(array);
  return {};
}

DataLoadResult readIdx(const fs::path& imagesPath, const fs::path& labelsPath,
                       std::vector<std::string> classNames) {
  std::string bytes;
  IdxArray images;
  IdxArray labels;
  if (auto error = readMaybeGzipped(imagesPath, bytes); !error.empty())
    return DataLoadResult::failure(error);
  if (auto error = parseIdx(bytes, imagesPath.string(), images); !error.empty())
    return DataLoadResult::failure(error);
  if (auto error = readMaybeGzipped(labelsPath, bytes); !error.empty())
    return DataLoadResult::failure(error);
  if (auto error = parseIdx(bytes, labelsPath.string(), labels); !error.empty())
    return DataLoadResult::failure(error);

  if (images.dims.size() != 3 && images.dims.size() != 4) {
    return DataLoadResult::failure(imagesPath.string() +
                                   ": images must be N×H×W or N×C×H×W, this file holds " +
                                   std::to_string(images.dims.size()) + " dimensions");
  }
  if (labels.dims.size() != 1) {
    return DataLoadResult::failure(labelsPath.string() +
                                   ": labels must be one dimension, this file holds " +
                                   std::to_string(labels.dims.size()));
  }
  if (images.dims[0] != labels.dims[0]) {
    return DataLoadResult::failure(
        imagesPath.filename().string() + " holds " + std::to_string(images.dims[0]) +
        " images but " + labelsPath.filename().string() + " holds " +
        std::to_string(labels.dims[0]) + " labels — they must come in matching pairs");
  }
  Dataset dataset;
  dataset.name = imagesPath.string();
  dataset.itemShape =
      images.dims.size() == 3
          ? std::vector<std::int64_t>{1, images.dims[1], images.dims[2]}
          : std::vector<std::int64_t>{images.dims[1], images.dims[2], images.dims[3]};
  dataset.values.resize(images.data.size());
  for (std::size_t i = 0; i < images.data.size(); ++i)
    dataset.values[i] = images.data[i] * (1.0f / 255.0f);
  int maxLabel = -1;
  dataset.labels.reserve(labels.data.size());
  for (auto label : labels.data) {
    dataset.labels.push_back(label);
    maxLabel = std::max<int>(maxLabel, label);
  }
  if (classNames.empty()) {
    for (int c = 0; c <= maxLabel; ++c) classNames.push_back(std::to_string(c));
  } else if (maxLabel >= static_cast<int>(classNames.size())) {
    return DataLoadResult::failure(labelsPath.string() + ": label " + std::to_string(maxLabel) +
                                   " but only " + std::to_string(classNames.size()) +
                                   " class names");
  }
  dataset.classNames = std::move(classNames);
  DataLoadResult result;
  result.dataset = std::move(dataset);
  return result;
}

fs::path fashionMnistDir() {
  const char* folder = std::getenv("SCALPEL_FASHION_MNIST_DIR");
  return folder && *folder ? fs::path(folder) : fs::path(kFashionMnistDir);
}

const std::vector<std::string>& fashionMnistClassNames() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
  return names;
}

DataLoadResult readFashionMnist(const std::string& split, const fs::path& folder) {
  if (split != "train" && split != "test") {
    return DataLoadResult::failure("unknown Fashion-MNIST split '" + split +
                                   "' — use train or test");
  }
  const std::string prefix = split == "train" ? "train" : "t10k";
  const auto images = folder / (prefix + "-images-idx3-ubyte.gz");
  if (!fs::exists(images)) {
    return DataLoadResult::failure(images.string() +
                                   ": not found — install Fashion-MNIST with apt-get install "
                                   "dataset-fashion-mnist (or set SCALPEL_FASHION_MNIST_DIR)");
  }
  auto result =
      readIdx(images, folder / (prefix + "-labels-idx1-ubyte.gz"), fashionMnistClassNames());
  if (result) result.dataset->name = "fashion-mnist/" + split;
  return result;
}

}  // namespace scalpel
