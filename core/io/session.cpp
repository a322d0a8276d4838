#include "io/session.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "files/atomic_file.h"
#include "io/train_format.h"
#include "scalpel/version.h"
#include "util/fingerprint.h"

namespace scalpel {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Data sources that are names, not paths (see openDataSource()).
bool isBuiltInSource(const std::string& source) { return source == "fashion-mnist"; }

// The folder that relative paths in the session file are relative to.
fs::path sessionFolder(const fs::path& sessionFile) {
  std::error_code error;
  fs::path absolute = fs::absolute(sessionFile, error);
  if (error) absolute = sessionFile;
  return absolute.lexically_normal().parent_path();
}

// How a path is written into the session file: relative to the session's folder when the two
// share more than the filesystem root, so a project folder can move as a whole, while a file
// elsewhere (a data set in /usr/share, another drive) keeps its absolute path.
std::string storedPath(const std::string& value, const fs::path& folder) {
  if (value.empty()) return value;
  std::error_code error;
  fs::path absolute = fs::absolute(value, error);
  if (error) return value;
  absolute = absolute.lexically_normal();
  if (absolute.root_path() != folder.root_path()) return absolute.string();
  const fs::path inFile = absolute.relative_path(), inFolder = folder.relative_path();
  if (inFile.empty() || inFolder.empty() || *inFile.begin() != *inFolder.begin()) {
    return absolute.string();
  }
  const fs::path relative = absolute.lexically_relative(folder);
  if (relative.empty()) return absolute.string();
  std::string text = relative.generic_string();
  // A folder named like a built-in source must not read back as that source.
  if (isBuiltInSource(text)) text = "./" + text;
  return text;
}

std::string storedSource(const std::string& source, const fs::path& folder) {
  return isBuiltInSource(source) ? source : storedPath(source, folder);
}

std::string resolvedPath(const std::string& stored, const fs::path& folder) {
  if (stored.empty()) return stored;
  const fs::path path(stored);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (folder / path).lexically_normal().string();
}

std::string resolvedSource(const std::string& stored, const fs::path& folder) {
  return isBuiltInSource(stored) ? stored : resolvedPath(stored, folder);
}

bool exists(const std::string& path) {
  std::error_code error;
  return fs::exists(path, error);
}

ordered_json toJson(const TargetSplit& split) {
  ordered_json out;
  out["train_per_class"] = split.trainPerClass;
  out["validation_per_class"] = split.validationPerClass;
  out["seed"] = split.seed;
  return out;
}

ordered_json toJson(const ModelChoices& choices) {
  ordered_json out;
  out["architecture"] = choices.architecture;
  out["preprocessing"] = choices.preprocessing;
  out["mean"] = choices.mean;
  out["std"] = choices.std;
  out["new_head_classes"] = choices.newHeadClasses;
  return out;
}

}  // namespace

// Not in the unnamed namespace: JsonFields finds these by argument-dependent lookup.
static void fromJson(const json& value, ModelChoices& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("architecture", out.architecture);
  fields.read("preprocessing", out.preprocessing);
  fields.read("mean", out.mean);
  fields.read("std", out.std);
  fields.read("new_head_classes", out.newHeadClasses);
}

static void fromJson(const json& value, TargetSplit& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("train_per_class", out.trainPerClass);
  fields.read("validation_per_class", out.validationPerClass);
  fields.read("seed", out.seed);
}

static void fromJson(const json& value, SessionRun& out, bool strict) {
  const JsonFields fields(value, strict);
  fields.read("name", out.name);
  fields.read("tuned_model", out.tunedModel);
  fields.read("report", out.report);
}

std::string saveSession(const Session& session, const fs::path& path) {
  try {
    const fs::path folder = sessionFolder(path);
    ordered_json out;
    out["format"] = kSessionFormat;
    out["scalpel_version"] = kVersion;
    out["model_path"] = storedPath(session.modelPath, folder);
    out["model_fingerprint"] = session.modelFingerprint.empty() && !session.modelPath.empty()
                                   ? fileFingerprint(session.modelPath)
                                   : session.modelFingerprint;
    out["model_choices"] = toJson(session.modelChoices);
    DataRequest target = session.target;
    target.source = storedSource(target.source, folder);
    out["target"] = toJson(target);
    out["reference"] = session.reference;
    DataRequest source = session.source;
    source.source = storedSource(source.source, folder);
    out["source"] = toJson(source);
    out["split"] = toJson(session.split);
    out["strategy"] = session.strategy;
    out["plan"] = toJson(session.plan);
    out["options"] = toJson(session.options);
    auto& runs = out["runs"] = ordered_json::array();
    for (const auto& run : session.runs) {
      ordered_json entry;
      entry["name"] = run.name;
      entry["tuned_model"] = storedPath(run.tunedModel, folder);
      entry["report"] = toJson(run.report);
      runs.push_back(std::move(entry));
    }
    // Replace invalid UTF-8 (a path in a legacy encoding) rather than fail the save.
    return writeFileAtomically(
        path, out.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n");
  } catch (const std::exception& error) {
    return "cannot save the session to " + path.string() + ": " + error.what();
  }
}

SessionLoadResult loadSession(const fs::path& path, Session& session) {
  SessionLoadResult result;
  const std::string name = path.string();
  const auto fail = [&](std::string message) {
    result.error = std::move(message);
    return result;
  };

  std::error_code error;
  if (!fs::exists(path, error)) return fail("cannot read " + name + ": there is no such file");
  if (fs::is_directory(path, error))
    return fail("cannot read " + name + ": it is a folder, not a session file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot read " + name + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail("cannot read " + name + ": reading failed");

  json document;
  try {
    document = json::parse(text.str());
  } catch (const json::exception& parseError) {
    return fail(name + " is not a Scalpel session (not JSON: " + jsonErrorText(parseError) + ")");
  }
  if (!document.is_object()) {
    return fail(name + " is not a Scalpel session (it holds " + describeJsonType(document) +
                ", not an object)");
  }
  const auto format = document.find("format");
  if (format == document.end()) return fail(name + " is not a Scalpel session (no format field)");
  if (!format->is_number_integer()) {
    return fail(name + " is not a Scalpel session (format should be a whole number, not " +
                describeJsonType(*format) + ")");
  }
  const auto version = format->get<std::int64_t>();
  if (version > kSessionFormat) {
    return fail(name + ": session format " + std::to_string(version) +
                " is newer than this Scalpel (" + std::to_string(kSessionFormat) +
                ") — update Scalpel");
  }
  if (version < 1) {
    return fail(name + ": session format " + std::to_string(version) + " is not one Scalpel wrote");
  }

  Session loaded;
  try {
    const JsonFields fields(document, true);
    fields.read("scalpel_version", loaded.scalpelVersion);
    fields.read("model_path", loaded.modelPath);
    fields.read("model_fingerprint", loaded.modelFingerprint);
    fields.read("model_choices", loaded.modelChoices);
    fields.read("target", loaded.target);
    fields.read("reference", loaded.reference);
    fields.read("source", loaded.source);
    fields.read("split", loaded.split);
    fields.read("strategy", loaded.strategy);
    fields.read("plan", loaded.plan);
    fields.read("options", loaded.options);
    fields.read("runs", loaded.runs);
  } catch (const FormatError& formatError) {
    return fail(name + ": " + formatError.what() + " — fix that field or save the session again");
  } catch (const std::exception& other) {
    return fail(name + " is not a Scalpel session: " + jsonErrorText(other));
  }
  loaded.format = static_cast<int>(version);

  const fs::path folder = sessionFolder(path);
  loaded.modelPath = resolvedPath(loaded.modelPath, folder);
  loaded.target.source = resolvedSource(loaded.target.source, folder);
  loaded.source.source = resolvedSource(loaded.source.source, folder);
  for (auto& run : loaded.runs) run.tunedModel = resolvedPath(run.tunedModel, folder);

  // What is gone is listed, not fatal: the session still shows its analysis and reports.
  if (!loaded.modelPath.empty()) {
    if (!exists(loaded.modelPath)) {
      result.missing.push_back("model file " + loaded.modelPath +
                               " was moved or deleted — open it again with File ▸ Open Model "
                               "and save the session");
    } else if (!loaded.modelFingerprint.empty()) {
      const std::string now = fileFingerprint(loaded.modelPath);
      if (now.empty()) {
        result.warnings.push_back("model file " + loaded.modelPath +
                                  " cannot be read — check its permissions");
      } else if (now != loaded.modelFingerprint) {
        result.warnings.push_back(
            "model file " + loaded.modelPath +
            " has changed since the session was saved — the analysis and runs in the session "
            "were made with the earlier file; analyse the target again before trusting them");
      }
    }
  }
  if (!loaded.target.source.empty() && !isBuiltInSource(loaded.target.source) &&
      !exists(loaded.target.source)) {
    result.missing.push_back("target data " + loaded.target.source +
                             " was moved or deleted — open it again with File ▸ Open Target "
                             "Image Folder or Open Target CSV and save the session");
  }
  if (loaded.reference == "data" && !loaded.source.source.empty() &&
      !isBuiltInSource(loaded.source.source) && !exists(loaded.source.source)) {
    result.missing.push_back("source data " + loaded.source.source +
                             " was moved or deleted — choose it again with Analysis ▸ Analyse "
                             "Against Source Data and save the session");
  }
  for (const auto& run : loaded.runs) {
    if (!run.tunedModel.empty() && !exists(run.tunedModel)) {
      result.missing.push_back("tuned model " + run.tunedModel + " of run '" + run.name +
                               "' was moved or deleted — its report is still in the session; "
                               "run it again to get the model back");
    }
  }

  session = std::move(loaded);
  result.ok = true;
  return result;
}

bool operator==(const TargetSplit& a, const TargetSplit& b) {
  return a.trainPerClass == b.trainPerClass && a.validationPerClass == b.validationPerClass &&
         a.seed == b.seed;
}

bool operator==(const SessionRun& a, const SessionRun& b) {
  return a.name == b.name && a.tunedModel == b.tunedModel && a.report == b.report;
}

bool operator==(const Session& a, const Session& b) {
  return a.format == b.format && a.scalpelVersion == b.scalpelVersion &&
         a.modelPath == b.modelPath && a.modelFingerprint == b.modelFingerprint &&
         a.modelChoices == b.modelChoices && a.target == b.target && a.reference == b.reference &&
         a.source == b.source && a.split == b.split && a.strategy == b.strategy &&
         a.plan == b.plan && a.options == b.options && a.runs == b.runs;
}

}  // namespace scalpel
