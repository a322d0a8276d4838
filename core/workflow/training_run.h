#pragma once

// The one path a fine-tuning run takes, whoever starts it: the window, `scalpel-cli train`, or a
// job folder (which runs the CLI). The session names the model, the data, the split, the
// strategy and the options; the run splits the target, chooses the plan (on rank 0 alone, shared
// with the other processes of a run on several), records the run in the session as it goes, and
// trains. Torch-free.

#include <functional>
#include <memory>
#include <string>

#include "io/session.h"
#include "workflow/fine_tuning.h"

namespace scalpel {

class Collective;

struct TrainingRequest {
  Session session;                     // its runs get this one, "running" until it ends
  const LoadedModel* model = nullptr;  // session.modelPath, opened once by the caller
  // Data already loaded (the window holds it): else session.target, and session.source when the
  // reference is "data", are loaded here.
  const Dataset* target = nullptr;
  const Dataset* source = nullptr;
  int probeEpochs = 2;  // strategy "probe"
  // Several processes training together (distributed/collective.h), or null for one.
  std::shared_ptr<Collective> collective;
  std::string
      checkpointPath;       // rank 0 writes the best state here at each improvement ("": nowhere)
  std::string metricsPath;  // rank 0 appends a JSON line per evaluation ("": none)
  double bucketMegabytes = 4;  // several processes: the size of a gradient bucket
};

struct TrainingHooks {
  std::function<void(const std::string&)> status;  // what is happening ("target: …", "probing …")
  // Strategy auto: a candidate plan's short run (PlanCandidate::name), in `round` (0-based).
  std::function<void(const std::string& candidate, int round, const TrainEvent&)> candidateEvent;
  std::function<void(const PlanChoice&)> planned;  // the plan, before the first step
  std::function<void(const TrainEvent&)> event;    // the trainer's steps and evaluations
  std::function<void(const Session&)>
      sessionChanged;  // the run recorded: at its start, each evaluation, its end
};

struct TrainingOutcome {
  bool ok = false;       // trained (possibly stopped early); the run holds the tuned model
  std::string error;     // why it did not start, or why it stopped
  bool rankZero = true;  // this process speaks for the run (the only one without a collective)
  PlanChoice choice;
  FineTuneRun run;
  Session session;  // the request's, with the run's final report as its last run
};

// Runs the request. Never throws.
TrainingOutcome runTraining(TrainingRequest request, const TrainingHooks& hooks = {},
                            TrainControl* control = nullptr);

}  // namespace scalpel
