#pragma once

namespace scalpel {
class TrainControl;
}

namespace scalpel::cli {

// Ctrl-C or SIGTERM (a terminal, the window's Stop through the launcher, Slurm's scancel, a
// Kubernetes pod's end) stops training after the current step: the best state so far is then
// written as usual, with the outcome "cancelled". Another signal, 2 s or more later, ends the
// process at once.
// `control` must live as long as the process; `announce`: say so on stderr (rank 0 speaks for all).
void cancelTrainingOnStopSignals(TrainControl& control, bool announce);

}  // namespace scalpel::cli
