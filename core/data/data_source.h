#pragma once

#include <string>

#include "data/dataset.h"

namespace scalpel {

// Opens data named the way users name it on the command line or in a session:
//   "fashion-mnist"  the Debian package's Fashion-MNIST (`split`: train or test)
//   a folder         an image folder (one subfolder per class)
//   a .csv file      tabular data, label in the last column
DataLoadResult openDataSource(const std::string& spec, const std::string& split = "test");

}  // namespace scalpel
