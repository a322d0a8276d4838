#pragma once

// Short content fingerprints, to tell whether a model or data set is the one a report or session
// was made with. Not cryptographic.

#include <filesystem>
#include <string>

#include "data/dataset.h"

namespace scalpel {

// "fnv1a64:<16 hex digits>:<size in bytes>" of the file's bytes; "" when it cannot be read.
std::string fileFingerprint(const std::filesystem::path& path);
// The same over a data set's shape, values and labels.
std::string datasetFingerprint(const Dataset& data);

}  // namespace scalpel
