#include "data/image_export.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "files/atomic_file.h"

namespace scalpel {

namespace fs = std::filesystem;

namespace {

std::string encodePng(const std::vector<unsigned char>& interleaved, int width, int height,
                      int channels) {
  std::string bytes;
  stbi_write_png_to_func(
      [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<char*>(data),
                                                   static_cast<std::size_t>(size));
      },
      &bytes, width, height, channels, interleaved.data(), width * channels);
  return bytes;
}

unsigned char toByte(float value) {
  return static_cast<unsigned char>(std::lround(std::clamp(value, 0.0f, 1.0f) * 255.0f));
}

}  // namespace

std::string writeImageFolder(const Dataset& data, const fs::path& folder, std::size_t limit) {
  if (!data.isImage()) return data.name + " holds feature rows, not images";
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) return "cannot create " + folder.string() + " (" + error.message() + ")";
  std::string classList;
  std::vector<fs::path> classFolders;
  for (const auto& name : data.classNames) {
    std::string safe = name;
    std::replace(safe.begin(), safe.end(), '/', '_');
    classFolders.push_back(folder / safe);
    fs::create_directories(classFolders.back(), error);
    if (error)
      return "cannot create " + classFolders.back().string() + " (" + error.message() + ")";
    classList += name + "\n";
  }
  if (auto problem = writeFileAtomically(folder / "classes.txt", classList); !problem.empty())
    return problem;
  const auto channels = static_cast<int>(data.itemShape[0]);
  const auto height = static_cast<int>(data.itemShape[1]);
  const auto width = static_cast<int>(data.itemShape[2]);
  const auto plane = static_cast<std::size_t>(height * width);
  const std::size_t count = limit ? std::min(limit, data.size()) : data.size();
  std::vector<unsigned char> interleaved(data.itemSize());
  for (std::size_t i = 0; i < count; ++i) {
    const float* item = data.item(i);
    for (std::size_t p = 0; p < plane; ++p) {
      for (int c = 0; c < channels; ++c)
        interleaved[p * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)] =
            toByte(item[static_cast<std::size_t>(c) * plane + p]);
    }
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", i);
    const auto path = classFolders[static_cast<std::size_t>(data.labels[i])] / name;
    if (auto problem = writeFileAtomically(path, encodePng(interleaved, width, height, channels));
        !problem.empty())
      return problem;
  }
  return {};
}

RgbImage renderPreviewGrid(const std::vector<const Dataset*>& rows,
                           const std::vector<std::size_t>& items, int scale, std::string& error) {
  if (rows.empty() || items.empty()) {
    error = "nothing to preview";
    return {};
  }
  const auto& shape = rows.front()->itemShape;
  if (shape.size() != 3) {
    error = "previews need images";
    return {};
  }
  const int channels = static_cast<int>(shape[0]);
  const int h = static_cast<int>(shape[1]) * scale;
  const int w = static_cast<int>(shape[2]) * scale;
  const int gap = 2;
  RgbImage image;
  image.width = static_cast<int>(items.size()) * (w + gap) + gap;
  image.height = static_cast<int>(rows.size()) * (h + gap) + gap;
  image.pixels.assign(static_cast<std::size_t>(image.width * image.height * 3), 255);
  const auto plane = static_cast<std::size_t>(shape[1] * shape[2]);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r]->itemShape != shape) {
      error = "preview rows must hold images of one shape";
      return {};
    }
    for (std::size_t k = 0; k < items.size(); ++k) {
      if (items[k] >= rows[r]->size()) {
        error = "preview item " + std::to_string(items[k]) + " is out of range";
        return {};
      }
      const float* item = rows[r]->item(items[k]);
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          const auto p = static_cast<std::size_t>((y / scale) * shape[2] + x / scale);
          const int cx = gap + static_cast<int>(k) * (w + gap) + x;
          const int cy = gap + static_cast<int>(r) * (h + gap) + y;
          for (int c = 0; c < 3; ++c) {
            const int source = channels == 3 ? c : 0;
            image.pixels[static_cast<std::size_t>((cy * image.width + cx) * 3 + c)] =
                toByte(item[static_cast<std::size_t>(source) * plane + p]);
          }
        }
      }
    }
  }
  return image;
}

std::string writePreviewGrid(const std::vector<const Dataset*>& rows,
                             const std::vector<std::size_t>& items, int scale,
                             const fs::path& file) {
  std::string error;
  const RgbImage image = renderPreviewGrid(rows, items, scale, error);
  if (!error.empty()) return error;
  return writeFileAtomically(file, encodePng(image.pixels, image.width, image.height, 3));
}

}  // namespace scalpel
