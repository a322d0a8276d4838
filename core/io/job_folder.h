#pragma once

// Torch-free: a training job as a self-contained folder, for a cluster or another machine, and
// its results read back. The folder holds:
//   model.pt             the pretrained model
//   data/                the session's CSV files and image folders (Fashion-MNIST is a name:
//                        dataset-fashion-mnist on Debian, or SCALPEL_FASHION_MNIST_DIR)
//   data-manifest.json   each data set's role, where it came from, its files and bytes
//   session.json         the session (plan, options, split); the run autosaves into it
//   run-local.sh         N processes on this machine (scalpel-cli train --nproc)
//   run-torchrun.sh      torchrun, one node or several (c10d rendezvous)
//   run-slurm.sbatch     Slurm: srun starts one task per process
//   README.md            how to run it and bring the results back
// and, once run, results/: tuned.pt (with its report), metrics.jsonl (one line per evaluation),
// checkpoint.pt (the best state so far), report/ and train.log.

#include <filesystem>
#include <string>
#include <vector>

#include "io/run_report.h"
#include "io/session.h"

namespace scalpel {

struct JobSettings {
  int processes = 2;  // per machine
  int machines = 1;
  // The scalpel-cli the scripts call when SCALPEL_CLI is not set and it is not on PATH.
  std::string scalpelCli;
};

// Writes the job for `session` (its model, target and source data, strategy, plan and options)
// into `folder`, which must be new or empty. Returns "" or what went wrong and what to do.
std::string writeJobFolder(const Session& session, const std::filesystem::path& folder,
                           const JobSettings& settings);

struct JobResults {
  bool ok = false;    // the run finished and its tuned model is there
  std::string error;  // why not, for the user
  RunReport report;   // the tuned model's embedded report
  std::string tunedModelPath;
  std::string tunedModelBytes;
  std::vector<EvaluationPoint> metrics;  // results/metrics.jsonl, so far
};

// What a job folder's run has produced: while it runs, the evaluations so far (ok false).
JobResults readJobResults(const std::filesystem::path& folder);

// Only the job's metrics log so far (results/metrics.jsonl; none yet is no error): what a window
// following a running job polls, without reading the tuned model. "" or the problem.
std::string readJobMetrics(const std::filesystem::path& folder,
                           std::vector<EvaluationPoint>& points);

// The lines of a metrics log (results/metrics.jsonl) as evaluation points; "" or the problem.
std::string parseMetricsLog(const std::string& text, std::vector<EvaluationPoint>& points);
// One line of it (JSON, no newline).
std::string metricsLogLine(const EvaluationPoint& point, std::size_t totalSteps);

}  // namespace scalpel
