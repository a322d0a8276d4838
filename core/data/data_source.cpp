#include "data/data_source.h"

#include <filesystem>

#include "data/csv_reader.h"
#include "data/idx_reader.h"

namespace scalpel {

DataLoadResult openDataSource(const std::string& spec, const std::string& split,
                              const ImageFolderOptions& imageOptions,
                              const std::vector<std::string>& regressionTargets) {
  namespace fs = std::filesystem;
  const bool csv = fs::path(spec).extension() == ".csv";
  if (!regressionTargets.empty() && !csv) {
    return DataLoadResult::failure(spec +
                                   ": regression targets are columns of a .csv file — give a CSV, "
                                   "or leave the targets out to classify");
  }
  if (spec == "fashion-mnist") return readFashionMnist(split);
  std::error_code error;
  if (fs::is_directory(spec, error)) return readImageFolder(spec, imageOptions);
  if (csv) {
    CsvOptions options;
    options.targetColumns = regressionTargets;
    return readCsv(spec, options);
  }
  if (!fs::exists(spec, error)) {
    return DataLoadResult::failure(spec +
                                   ": no such file or folder — give fashion-mnist, an image "
                                   "folder, a .csv file or an IDX images file");
  }
  // MNIST-style IDX: the images file names its labels file ("…-images-idx3-ubyte[.gz]" beside
  // "…-labels-idx1-ubyte[.gz]").
  const std::string file = fs::path(spec).filename().string();
  if (const auto at = file.find("images-idx3"); at != std::string::npos) {
    const fs::path labels =
        fs::path(spec).parent_path() / (file.substr(0, at) + "labels-idx1" + file.substr(at + 11));
    if (!fs::exists(labels, error)) {
      return DataLoadResult::failure(
          spec + ": its labels file " + labels.string() +
          " is missing — IDX data is a pair of files, keep them side by side");
    }
    return readIdx(spec, labels);
  }
  return DataLoadResult::failure(
      spec +
      ": not a data source Scalpel reads — give fashion-mnist, an image folder (one subfolder per "
      "class), a .csv file or an IDX images file (…-images-idx3-ubyte)");
}

}  // namespace scalpel
