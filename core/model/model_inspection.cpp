#include "model/model_inspection.h"

#include "model/loaded_model.h"

namespace scalpel {

ModelInspection inspectModel(const std::string& path, const InspectOptions& options) {
  return LoadedModel::open(path, options).inspection();
}

}  // namespace scalpel
