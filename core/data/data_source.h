#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_folder_reader.h"

namespace scalpel {

// Opens data named the way users name it on the command line or in a session:
//   "fashion-mnist"  the Debian package's Fashion-MNIST (`split`: train or test)
//   a folder         an image folder (one subfolder per class), read with `imageOptions` (the
//                    model's input shape and class names, so folders map to the right outputs)
//   a .csv file      tabular data, label in the last column, or the numeric columns named by
//                    `regressionTargets` to predict (regression; CSV only)
//   an IDX file      "…-images-idx3-ubyte[.gz]", its labels in "…-labels-idx1-ubyte[.gz]" beside it
DataLoadResult openDataSource(const std::string& spec, const std::string& split = "test",
                              const ImageFolderOptions& imageOptions = {},
                              const std::vector<std::string>& regressionTargets = {});

}  // namespace scalpel
