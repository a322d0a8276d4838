#pragma once

// A session: everything needed to come back to an analysis and its fine-tuning runs. Saved as
// JSON with a format version; paths are stored relative to the session file where possible.
// Torch-free.

#include <filesystem>
#include <string>
#include <vector>

#include "analysis/advisor.h"
#include "data/data_request.h"
#include "io/run_report.h"
#include "model/model_inspection.h"
#include "train/trainer.h"

namespace scalpel {

inline constexpr int kSessionFormat = 1;

// How the target data is split for fine-tuning (the paper's protocol: per-class counts; a
// regression set is one group, so the counts apply to the whole set).
struct TargetSplit {
  std::size_t trainPerClass = 100;
  std::size_t validationPerClass = 50;  // the rest is the test split
  std::uint64_t seed = 0;
};

struct SessionRun {
  std::string name;        // "block:stem", "auto" ...
  std::string tunedModel;  // path of the tuned model written by the run ("" if none)
  RunReport report;        // outcome "running" while a run is being autosaved
};

struct Session {
  int format = kSessionFormat;
  std::string scalpelVersion;
  std::string modelPath;  // absolute in memory; relative to the session file on disk
  // fileFingerprint() of the model; saveSession() computes it when empty. Set it when the model
  // is opened, so autosaves do not hash the model again.
  std::string modelFingerprint;
  ModelChoices modelChoices;  // how it is opened: architecture, preprocessing, a new head
  DataRequest target;
  // The source of reference statistics: "batchnorm", "stored" (the model's own profile) or
  // "data" (then `source` says which).
  std::string reference = "batchnorm";
  DataRequest source;
  TargetSplit split;
  std::string strategy = "auto";
  FreezePlan plan;
  TrainOptions options;
  std::vector<SessionRun> runs;
};

// Writes the session atomically. Returns "" or what went wrong (the previous file is then intact).
std::string saveSession(const Session& session, const std::filesystem::path& path);

struct SessionLoadResult {
  bool ok = false;
  std::string error;                  // malformed, newer format, unreadable
  std::vector<std::string> missing;   // "model file /x/y.pt is missing — ..." (loaded anyway)
  std::vector<std::string> warnings;  // e.g. the model changed since the session was saved
};

// Reads a session; relative paths are resolved against the session file's folder.
SessionLoadResult loadSession(const std::filesystem::path& path, Session& session);

// Field-wise, for round-trip checks (NaN equals NaN, as in train_format.h).
bool operator==(const TargetSplit& a, const TargetSplit& b);
bool operator==(const SessionRun& a, const SessionRun& b);
bool operator==(const Session& a, const Session& b);

}  // namespace scalpel
