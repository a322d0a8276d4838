// libFuzzer target: one image-folder entry (decodeImage: stb_image, then the resize to the
// model's input) must give C×H×W pixels in [0, 1] or a message, never a crash. stb is compiled
// into this target from Debian's headers, so the fuzzer sees inside the decoders.
// Built and run by scripts/fuzz.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_resize.h>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_folder_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path file =
      fs::temp_directory_path() / ("scalpel-fuzz-image-" + std::to_string(::getpid()) + ".img");
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  // Real photos of tens of megapixels are legitimate and take seconds under the sanitizers; a few
  // bytes can claim them (BMP reads past its end as zeros). Past 4 megapixels only the refusal
  // above 64 is of interest, and decodeImage's own check is what is tested there.
  int w = 0, h = 0, n = 0;
  if (stbi_info(file.string().c_str(), &w, &h, &n) && static_cast<long long>(w) * h > (4LL << 20)) {
    std::vector<float> pixels;
    if (static_cast<long long>(w) * h > (64LL << 20) &&
        scalpel::decodeImage(file, 1, 28, 28, pixels).empty())
      __builtin_trap();
    return 0;
  }
  for (const std::int64_t channels : {1, 3}) {
    std::vector<float> pixels;
    const auto problem = scalpel::decodeImage(file, channels, 28, 28, pixels);
    if (!problem.empty()) continue;  // refused, with a reason
    if (pixels.size() != static_cast<std::size_t>(channels * 28 * 28)) __builtin_trap();
    for (float p : pixels) {
      if (!(p >= 0.0f && p <= 1.0f)) __builtin_trap();
    }
  }
  return 0;
}
