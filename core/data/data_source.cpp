#include "data/data_source.h"

#include <filesystem>

#include "data/csv_reader.h"
#include "data/idx_reader.h"

namespace scalpel {

DataLoadResult openDataSource(const std::string& spec, const std::string& split,
                              const ImageFolderOptions& imageOptions) {
  namespace fs = std::filesystem;
  if (spec == "fashion-mnist") return readFashionMnist(split);
  std::error_code error;
  if (fs::is_directory(spec, error)) return readImageFolder(spec, imageOptions);
  if (fs::path(spec).extension() == ".csv") return readCsv(spec);
  if (!fs::exists(spec, error)) {
    return DataLoadResult::failure(spec + ": no such file or folder — give fashion-mnist, an image folder or a .csv file");
  }
  return DataLoadResult::failure(spec + ": not a data source Scalpel reads — give fashion-mnist, an image folder (one subfolder per class) or a .csv file");
}

}  // namespace scalpel
