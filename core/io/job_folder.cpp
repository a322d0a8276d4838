#include "io/job_folder.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <system_error>

#include "files/atomic_file.h"
#include "io/model_export.h"
#include "io/train_format.h"
#include "util/fingerprint.h"

namespace fs = std::filesystem;

namespace scalpel {
namespace {

// What every launch script passes to `scalpel-cli train`: the session's settings, results/.
const char* kTrainArguments =
    "train --session session.json --out results/tuned.pt --checkpoint results/checkpoint.pt "
    "--metrics results/metrics.jsonl --report results/report";

// Copies a data file or folder into data/ and says where it went (relative to the job folder).
std::string copyData(const std::string& source, const fs::path& folder,
                     nlohmann::ordered_json& entry, std::string& copied) {
  std::error_code error;
  const fs::path from(source);
  if (!fs::exists(from, error))
    return source + " does not exist — open the data again before exporting the job";
  const fs::path to = fs::path("data") / from.filename();
  fs::create_directories(folder / "data", error);
  if (fs::exists(folder / to, error))
    return "two data sets are both named " + from.filename().string() +
           " — rename one before exporting the job";
  fs::copy(from, folder / to, fs::copy_options::recursive, error);
  if (error) return "could not copy " + source + " into the job: " + error.message();
  std::uintmax_t bytes = 0, files = 0;
  if (fs::is_directory(from)) {
    for (const auto& item : fs::recursive_directory_iterator(from)) {
      if (!item.is_regular_file()) continue;
      ++files;
      bytes += item.file_size();
    }
  } else {
    files = 1;
    bytes = fs::file_size(from);
    entry["fingerprint"] = fileFingerprint(source);
  }
  entry["copied_to"] = to.generic_string();
  entry["files"] = files;
  entry["bytes"] = bytes;
  copied = (folder / to).string();
  return "";
}

std::string script(const fs::path& path, const std::string& text) {
  if (auto problem = writeFileAtomically(path, text); !problem.empty()) return problem;
  std::error_code error;
  fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add, error);
  return error ? "could not make " + path.string() + " executable: " + error.message() : "";
}

// The scripts' opening: run from the job folder, find scalpel-cli, keep a log.
std::string preamble(const JobSettings& settings) {
  std::ostringstream text;
  text
      << "set -euo pipefail\n"
      << "cd \"$(dirname \"$0\")\"\n"
      << "# scalpel-cli: $SCALPEL_CLI, else the one that exported this job, else the one on PATH.\n"
      << "cli=${SCALPEL_CLI:-" << settings.scalpelCli << "}\n"
      << "[[ -x $cli ]] || cli=scalpel-cli\n"
      << "mkdir -p results\n";
  return text.str();
}

}  // namespace

std::string metricsLogLine(const EvaluationPoint& point, std::size_t totalSteps) {
  auto json = toJson(point);
  json["total_steps"] = totalSteps;
  return json.dump();
}

std::string parseMetricsLog(const std::string& text, std::vector<EvaluationPoint>& points) {
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      EvaluationPoint point;
      fromJson(nlohmann::json::parse(line), point);
      points.push_back(point);
    } catch (const std::exception& error) {
      // The last line may be half-written while the run goes on: the rest still counts.
      if (lines.peek() == EOF) break;
      return "line " + std::to_string(number) +
             " of the metrics log is not an evaluation: " + error.what();
    }
  }
  return "";
}

std::string writeJobFolder(const Session& given, const fs::path& folder,
                           const JobSettings& settings) {
  std::error_code error;
  if (given.modelPath.empty()) return "open a model first: the job trains it";
  if (given.target.source.empty()) return "open target data first: the job trains on it";
  if (fs::exists(folder, error) && !fs::is_empty(folder, error))
    return folder.string() + " is not empty — choose a new or empty folder for the job";
  if (settings.processes < 1 || settings.machines < 1)
    return "a job needs at least one process on one machine";
  fs::create_directories(folder / "results", error);
  if (error) return "could not create " + folder.string() + ": " + error.message();

  Session session = given;
  session.runs.clear();  // the job's run is added by the job itself
  fs::copy_file(given.modelPath, folder / "model.pt", error);
  if (error)
    return "could not copy the model " + given.modelPath + " into the job: " + error.message();
  session.modelPath = (fs::absolute(folder) / "model.pt").string();

  nlohmann::ordered_json manifest;
  manifest["model"] = {{"original", given.modelPath},
                       {"copied_to", "model.pt"},
                       {"fingerprint", fileFingerprint(given.modelPath)}};
  manifest["data"] = nlohmann::ordered_json::array();
  for (auto [role, request] :
       {std::pair{"target", &session.target}, std::pair{"source", &session.source}}) {
    if (std::string(role) == "source" && session.reference != "data") continue;
    nlohmann::ordered_json entry;
    entry["role"] = role;
    entry["description"] = request->describe();
    entry["original"] = request->source;
    if (request->source == "fashion-mnist") {
      entry["note"] =
          "built in: the Debian package dataset-fashion-mnist, or SCALPEL_FASHION_MNIST_DIR";
    } else {
      std::string copied;
      if (auto problem = copyData(request->source, folder, entry, copied); !problem.empty())
        return problem;
      request->source = copied;
    }
    manifest["data"].push_back(entry);
  }
  if (auto problem = writeFileAtomically(folder / "data-manifest.json", manifest.dump(2) + "\n");
      !problem.empty())
    return problem;
  if (auto problem = saveSession(session, folder / "session.json"); !problem.empty())
    return problem;

  const std::string total = std::to_string(settings.processes * settings.machines);
  const std::string processes = std::to_string(settings.processes),
                    machines = std::to_string(settings.machines);
  if (auto problem = script(folder / "run-local.sh",
                            "#!/usr/bin/env bash\n# This machine: NPROC processes (default " +
                                processes + "), data-parallel over Gloo.\n" + preamble(settings) +
                                "\"$cli\" " + kTrainArguments + " --nproc \"${NPROC:-" + processes +
                                "}\" 2>&1 | tee results/train.log\n");
      !problem.empty()) {
    return problem;
  }
  if (auto problem = script(
          folder / "run-torchrun.sh",
          "#!/usr/bin/env bash\n# torchrun on every machine of the job (the same command on "
          "each):\n"
          "#   NNODES=" +
              machines + " NPROC_PER_NODE=" + processes +
              " RDZV_ENDPOINT=first-machine:29500 ./run-torchrun.sh\n"
              "# (underscored options: torchrun 1.13 knows no others, 2.x takes both)\n" +
              preamble(settings) + "torchrun --nnodes \"${NNODES:-" + machines +
              "}\" --nproc_per_node \"${NPROC_PER_NODE:-" + processes +
              "}\" \\\n"
              "  --rdzv_backend c10d --rdzv_endpoint \"${RDZV_ENDPOINT:-localhost:29500}\" \\\n"
              // Debian's torchrun (1.13 on Python 3.11) cannot parse the default
              // "0" of these two; stderr to the console and a log is what it means.
              "  --redirects 2 --tee 2 --log_dir results/torchrun \\\n"
              "  --no_python \"$cli\" " +
              kTrainArguments + " 2>&1 | tee -a results/train.log\n");
      !problem.empty()) {
    return problem;
  }
  if (auto problem = script(
          folder / "run-slurm.sbatch",
          "#!/usr/bin/env bash\n# Slurm: sbatch run-slurm.sbatch (from this folder, on a shared "
          "filesystem).\n"
          "#SBATCH --job-name=scalpel\n#SBATCH --nodes=" +
              machines + "\n#SBATCH --ntasks-per-node=" + processes +
              "\n"
              "#SBATCH --cpus-per-task=4\n##SBATCH --gpus-per-task=1   (remove one # to give each "
              "process a GPU)\n"
              "#SBATCH --output=results/slurm-%j.log\n"
              "set -euo pipefail\ncd \"${SLURM_SUBMIT_DIR:-$(dirname \"$0\")}\"\n"
              "cli=${SCALPEL_CLI:-" +
              settings.scalpelCli +
              "}\n[[ -x $cli ]] || cli=scalpel-cli\nmkdir -p results\n"
              "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
              "export MASTER_PORT=${MASTER_PORT:-29500}\n"
              "# One task per process; Slurm's numbering becomes the launcher variables "
              "scalpel-cli reads.\n"
              "srun bash -c 'RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID "
              "\\\n"
              "  LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE exec \"$0\" " +
              std::string(kTrainArguments) + "' \"$cli\"\n");
      !problem.empty()) {
    return problem;
  }
  const std::string readme =
      "# Scalpel training job\n\n"
      "Fine-tunes `model.pt` on " +
      session.target.describe() + " with strategy `" + session.strategy + "` on " + total +
      " processes, data-parallel (PyTorch's c10d with Gloo; each process takes its share of every "
      "batch, and only the trainable "
      "layers' gradients travel).\n\n"
      "- This machine: `./run-local.sh` (NPROC=" +
      processes +
      " by default).\n"
      "- torchrun: `NNODES=" +
      machines + " NPROC_PER_NODE=" + processes +
      " RDZV_ENDPOINT=host:29500 ./run-torchrun.sh` on every machine.\n"
      "- Slurm: `sbatch run-slurm.sbatch`.\n\n"
      "Every machine needs scalpel-cli (set SCALPEL_CLI if it is not on PATH) and this folder at "
      "the same place. "
      "The global batch is the session's batch size; it must be a multiple of the number of "
      "processes.\n\n"
      "Results land in `results/`: `metrics.jsonl` (one line per evaluation, as it happens), "
      "`checkpoint.pt` (the best state so far), "
      "`tuned.pt` (the tuned model with its report inside), `report/` and `train.log`; "
      "`session.json` gets the run. "
      "In Scalpel: Training > Open Job Results... and choose this folder.\n\n"
      "`data-manifest.json` lists the data the job carries.\n";
  return writeFileAtomically(folder / "README.md", readme);
}

std::string readJobMetrics(const fs::path& folder, std::vector<EvaluationPoint>& points) {
  const auto metrics = folder / "results" / "metrics.jsonl";
  std::error_code error;
  if (!fs::exists(metrics, error)) return "";
  std::ifstream in(metrics);
  std::ostringstream text;
  text << in.rdbuf();
  if (auto problem = parseMetricsLog(text.str(), points); !problem.empty())
    return metrics.string() + ": " + problem;
  return "";
}

JobResults readJobResults(const fs::path& folder) {
  JobResults results;
  std::error_code error;
  if (!fs::exists(folder / "session.json", error) || !fs::exists(folder / "model.pt", error)) {
    results.error = folder.string() +
                    " is not a Scalpel job folder (no session.json and model.pt) — choose the "
                    "folder Export Job... wrote";
    return results;
  }
  if (auto problem = readJobMetrics(folder, results.metrics); !problem.empty()) {
    results.error = problem;
    return results;
  }
  const auto tuned = folder / "results" / "tuned.pt";
  if (!fs::exists(tuned, error)) {
    results.error =
        "the job has no tuned model yet (results/tuned.pt): " +
        (results.metrics.empty()
             ? std::string("it has not started, or failed before its first evaluation — see "
                           "results/train.log")
             : std::to_string(results.metrics.size()) +
                   " evaluations so far; it is still running or stopped (see results/train.log)");
    return results;
  }
  std::string json;
  if (auto problem = readEmbeddedReport(tuned, json); !problem.empty()) {
    results.error = problem;
    return results;
  }
  if (json.empty()) {
    results.error =
        tuned.string() + " carries no Scalpel report — was it written by scalpel-cli train?";
    return results;
  }
  if (auto problem = parseRunReport(json, results.report); !problem.empty()) {
    results.error = tuned.string() + ": " + problem;
    return results;
  }
  std::ifstream in(tuned, std::ios::binary);
  results.tunedModelBytes.assign(std::istreambuf_iterator<char>(in),
                                 std::istreambuf_iterator<char>());
  results.tunedModelPath = fs::absolute(tuned).string();
  results.ok = true;
  return results;
}

}  // namespace scalpel
