#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace scalpel {

struct ImageFolderOptions {
  // {C, H, W} every image is converted and resized to (the model's input); empty: the channels
  // and size of the first readable image.
  std::vector<std::int64_t> itemShape;
  // The model's output classes. Folders are matched to them by name; empty: a classes.txt in the
  // folder (one name per line, in output order), else the folders in name order.
  std::vector<std::string> classNames;
};

// One subfolder per class holding PNG, JPEG, BMP or GIF images. Unreadable images are skipped and
// named in a warning; the load fails only when none is left. The folder → output mapping is
// always reported in the notes, since a wrong mapping looks exactly like an output-level shift.
DataLoadResult readImageFolder(const std::filesystem::path& folder,
                               const ImageFolderOptions& options = {});

// Decodes one image file and converts it to C×H×W floats in [0, 1] (bilinear resize).
// Returns "" or why the file cannot be used.
std::string decodeImage(const std::filesystem::path& file, std::int64_t channels,
                        std::int64_t height, std::int64_t width, std::vector<float>& out);

}  // namespace scalpel
