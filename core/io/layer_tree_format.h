#pragma once

#include <string>

#include "model/model_inspection.h"

namespace scalpel {

// Indented text: one line per module, in execution order, with its block, type, parameters and
// output shape — what `scalpel-cli inspect` prints.
std::string inspectionToText(const ModelInspection& inspection);

// The same as JSON (nodes in execution order, blocks, warnings), for scripts.
std::string inspectionToJson(const ModelInspection& inspection);

}  // namespace scalpel
