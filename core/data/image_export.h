#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

// Writes an image data set as an image folder that readImageFolder() reads back: one subfolder
// per class (named after it, '/' as '_'), PNG files, and a classes.txt fixing the output order.
// At most `limit` items (0: all). Every file is written atomically. Returns "" or the error.
std::string writeImageFolder(const Dataset& data, const std::filesystem::path& folder,
                             std::size_t limit = 0);

// RGB pixels, row after row.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<unsigned char> pixels;  // width × height × 3
};

// A grid: one row per data set (e.g. clean, then each severity), the same `items` in each, every
// image magnified `scale` times, separated by a thin white gap. Returns an empty image and sets
// `error` when the rows do not fit together.
RgbImage renderPreviewGrid(const std::vector<const Dataset*>& rows,
                           const std::vector<std::size_t>& items, int scale, std::string& error);

// The same grid as a PNG file. Returns "" or the error.
std::string writePreviewGrid(const std::vector<const Dataset*>& rows,
                             const std::vector<std::size_t>& items, int scale,
                             const std::filesystem::path& file);

}  // namespace scalpel
