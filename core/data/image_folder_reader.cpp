#include "data/image_folder_reader.h"

#include <stb_image.h>
#include <stb_image_resize.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>

namespace scalpel {

namespace fs = std::filesystem;

namespace {

bool isImageFile(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), ::tolower);
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg" ||
         extension == ".bmp" || extension == ".gif";
}

std::vector<fs::path> sortedEntries(const fs::path& folder, bool directories) {
  std::vector<fs::path> entries;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error)) {
    if (directories ? entry.is_directory() : entry.is_regular_file())
      entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

std::vector<std::string> readClassList(const fs::path& file) {
  std::vector<std::string> names;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

// A PNG is a list of chunks, each with its length up front, and stb reserves memory for an image
// chunk's claimed length before reading it: a short file whose second chunk claims 2 GB made it
// allocate 2 GB (found by fuzzing). Walking the chunk headers first costs a few seeks and refuses
// only files stb could not read either. Returns "" or why the file is damaged.
std::string pngChunksFitTheFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[8];
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in.read(reinterpret_cast<char*>(header), 8) || !std::equal(header, header + 8, kSignature))
    return {};
  std::error_code error;
  const auto size = static_cast<std::uint64_t>(fs::file_size(file, error));
  if (error) return {};
  std::uint64_t at = 8;
  while (in.read(reinterpret_cast<char*>(header), 8)) {  // length (big-endian), type
    const std::uint64_t length =
        (std::uint64_t{header[0]} << 24) | (header[1] << 16) | (header[2] << 8) | header[3];
    if (at + 12 + length > size) {
      return "a damaged PNG: its chunk '" + std::string(reinterpret_cast<char*>(header) + 4, 4) +
             "' claims " + std::to_string(length) + " bytes, but only " +
             std::to_string(size - std::min(size, at + 8)) +
             " follow — the file is cut short or not a PNG";
    }
    if (std::equal(header + 4, header + 8, "IEND")) return {};
    at += 12 + length;
    in.seekg(static_cast<std::streamoff>(at));
  }
  return {};  // no IEND: stb says so
}

// Folder names must not contain '/', so "T-shirt/top" is matched as "T-shirt_top" too.
std::string folderNameFor(std::string className) {
  std::replace(className.begin(), className.end(), '/', '_');
  return className;
}

}  // namespace

std::string decodeImage(const fs::path& file, std::int64_t channels, std::int64_t height,
                        std::int64_t width, std::vector<float>& out) {
  int w = 0;
  int h = 0;
  int n = 0;
  // The header first: a damaged or hostile file can claim dimensions whose pixels would not fit
  // in memory, and stb would try to allocate them (found by fuzzing).
  if (!stbi_info(file.string().c_str(), &w, &h, &n))
    return file.filename().string() + " (" + stbi_failure_reason() + ")";
  constexpr long long kMaxPixels = 64LL << 20;  // 64 megapixels: far beyond any model's input
  // Damage, not a picture (both found by fuzzing): stb accepts some damaged headers as a
  // 0-pixel-wide image, and a strip thousands of times longer than wide (4×589828) takes minutes to
  // resize.
  if (w < 1 || h < 1 || std::max(w, h) > 1000LL * std::min(w, h)) {
    return file.filename().string() + " (a damaged header: " + std::to_string(w) + "×" +
           std::to_string(h) + " pixels)";
  }
  if (static_cast<long long>(w) * h > kMaxPixels) {
    return file.filename().string() + " (" + std::to_string(w) + "×" + std::to_string(h) +
           " pixels: larger than the 64 megapixels Scalpel reads — scale it down first)";
  }
  if (auto damage = pngChunksFitTheFile(file); !damage.empty())
    return file.filename().string() + " (" + damage + ")";
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load(file.string().c_str(), &w, &h, &n, static_cast<int>(channels)), stbi_image_free);
  if (!pixels) return file.filename().string() + " (" + stbi_failure_reason() + ")";
  if (w < 1 || h < 1) return file.filename().string() + " (a damaged header: no pixels)";
  std::vector<unsigned char> resized;
  const unsigned char* source = pixels.get();
  if (w != width || h != height) {
    resized.resize(static_cast<std::size_t>(channels * height * width));
    if (!stbir_resize_uint8(pixels.get(), w, h, 0, resized.data(), static_cast<int>(width),
                            static_cast<int>(height), 0, static_cast<int>(channels))) {
      return file.filename().string() + " (cannot be resized)";
    }
    source = resized.data();
  }
  // stb gives H×W×C interleaved; Scalpel holds C×H×W planes.
  const auto plane = static_cast<std::size_t>(height * width);
  out.resize(static_cast<std::size_t>(channels) * plane);
  for (std::size_t p = 0; p < plane; ++p) {
    for (std::int64_t c = 0; c < channels; ++c) {
      out[static_cast<std::size_t>(c) * plane + p] =
          source[p * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)] *
          (1.0f / 255.0f);
    }
  }
  return {};
}

DataLoadResult readImageFolder(const fs::path& folder, const ImageFolderOptions& options) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    return DataLoadResult::failure(
        folder.string() +
        ": not a folder — choose a folder with one subfolder of images per class");
  }
  const auto classFolders = sortedEntries(folder, true);
  if (classFolders.empty()) {
    return DataLoadResult::failure(folder.string() +
                                   ": no class subfolders — put the images of each class in a "
                                   "subfolder named after the class");
  }

  // Which output each folder means.
  DataLoadResult result;
  std::vector<std::string> classNames = options.classNames;
  std::string source = "the model's class names";
  if (classNames.empty() && fs::exists(folder / "classes.txt")) {
    classNames = readClassList(folder / "classes.txt");
    source = "classes.txt";
  }
  std::map<fs::path, int> labelOf;
  if (classNames.empty()) {
    source = "folder names in sorted order";
    for (const auto& sub : classFolders) {
      labelOf[sub] = static_cast<int>(classNames.size());
      classNames.push_back(sub.filename().string());
    }
  } else {
    for (const auto& sub : classFolders) {
      const std::string name = sub.filename().string();
      const auto it = std::find_if(classNames.begin(), classNames.end(), [&](const std::string& c) {
        return c == name || folderNameFor(c) == name;
      });
      if (it == classNames.end()) {
        return DataLoadResult::failure(folder.string() + ": folder '" + name +
                                       "' is not one of the " + std::to_string(classNames.size()) +
                                       " classes named by " + source + " — rename it, or fix " +
                                       source);
      }
      labelOf[sub] = static_cast<int>(it - classNames.begin());
    }
  }
  std::string mapping = "class mapping (" + source + "):";
  for (const auto& [sub, label] : labelOf) {
    mapping += " " + sub.filename().string() + "→" + std::to_string(label);
  }
  result.notes.push_back(mapping);

  Dataset dataset;
  dataset.name = folder.string();
  dataset.classNames = classNames;
  dataset.itemShape = options.itemShape;
  std::vector<std::string> skipped;
  std::vector<float> pixels;
  for (const auto& [sub, label] : labelOf) {
    for (const auto& file : sortedEntries(sub, false)) {
      if (!isImageFile(file)) continue;
      if (dataset.itemShape.empty()) {  // take channels and size from the first readable image
        int w = 0, h = 0, n = 0;
        if (!stbi_info(file.string().c_str(), &w, &h, &n)) {
          skipped.push_back(file.filename().string() + " (" + stbi_failure_reason() + ")");
          continue;
        }
        dataset.itemShape = {n >= 3 ? 3 : 1, h, w};
      }
      const auto problem = decodeImage(file, dataset.itemShape[0], dataset.itemShape[1],
                                       dataset.itemShape[2], pixels);
      if (!problem.empty()) {
        skipped.push_back(problem);
        continue;
      }
      dataset.values.insert(dataset.values.end(), pixels.begin(), pixels.end());
      dataset.labels.push_back(label);
    }
  }
  if (!skipped.empty()) {
    std::string warning = folder.string() + ": skipped " + std::to_string(skipped.size()) +
                          " unreadable image" + (skipped.size() > 1 ? "s" : "") + ":";
    for (std::size_t i = 0; i < std::min<std::size_t>(skipped.size(), 5); ++i)
      warning += " " + skipped[i] + (i + 1 < skipped.size() ? "," : "");
    if (skipped.size() > 5) warning += " …";
    result.warnings.push_back(warning);
  }
  if (dataset.labels.empty()) {
    return DataLoadResult::failure(
        folder.string() + ": no readable images (PNG, JPEG, BMP or GIF) in its class subfolders" +
        (skipped.empty() ? "" : "; " + result.warnings.front()));
  }
  result.dataset = std::move(dataset);
  return result;
}

}  // namespace scalpel
