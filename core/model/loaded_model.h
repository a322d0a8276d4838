#pragma once

// Torch-free handle on a model opened once for a whole session. Every stage works on this one
// load: the analysis runs it as it is; gradients and training take their own copy
// (ScriptModel::copy), since they change its flags and weights. So no stage reads the file again,
// and every stage sees the same model.

#include <memory>
#include <string>

#include "model/model_inspection.h"

namespace scalpel {

class ScriptModel;

class LoadedModel {
 public:
  LoadedModel();  // nothing open: ok() is false
  // Loads the file on the CPU, builds its layer tree and probes its output shapes (what
  // inspectModel() reports). Never throws; a failure is in inspection().error.
  static LoadedModel open(const std::string& path, const InspectOptions& options = {});

  bool ok() const { return m_inspection.ok; }
  const std::string& error() const { return m_inspection.error; }
  const std::string& path() const { return m_inspection.path; }
  const ModelInspection& inspection() const { return m_inspection; }
  const LayerTree& tree() const { return m_inspection.tree; }
  // util/fingerprint.h's of the file as it was opened, for reports and sessions.
  const std::string& fingerprint() const { return m_fingerprint; }

  // Torch-facing (model/script_model.h), for core: the loaded model. Requires ok().
  ScriptModel& script() const;

 private:
  std::shared_ptr<ScriptModel> m_model;  // shared by copies of this handle
  ModelInspection m_inspection;
  std::string m_fingerprint;
};

}  // namespace scalpel
