#include "workflow/training_run.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "distributed/collective.h"
#include "io/job_folder.h"
#include "io/train_format.h"
#include "util/device_info.h"

namespace scalpel {

namespace {

// What rank 0 decided (plan) and trains on (data), for the other ranks: they take its plan, so
// a plan that depends on timing or a GPU's rounding cannot differ between processes.
struct SharedStart {
  PlanChoice choice;
  std::string dataFingerprint;
};

std::string toText(const SharedStart& start) {
  nlohmann::ordered_json json;
  json["ok"] = start.choice.ok;
  json["error"] = start.choice.error;
  json["plan"] = toJson(start.choice.plan);
  json["learning_rate"] = start.choice.learningRate;
  json["data"] = start.dataFingerprint;
  return json.dump();
}

SharedStart fromText(const std::string& text) {
  const auto json = nlohmann::json::parse(text);
  SharedStart start;
  start.choice.ok = json.at("ok").get<bool>();
  start.choice.error = json.at("error").get<std::string>();
  fromJson(json.at("plan"), start.choice.plan);
  start.choice.learningRate = json.at("learning_rate").get<double>();
  start.dataFingerprint = json.at("data").get<std::string>();
  return start;
}

class TrainingRun {
 public:
  TrainingRun(TrainingRequest request, const TrainingHooks& hooks, TrainControl* control)
      : m_request(std::move(request)), m_hooks(hooks), m_control(control) {
    m_outcome.rankZero = !m_request.collective || m_request.collective->rank() == 0;
  }

  TrainingOutcome run() {
    try {
      if (prepare() && choose() && share()) train();
    } catch (const std::exception& error) {  // never out of here
      m_outcome.error = std::string("training failed: ") + error.what();
    }
    m_outcome.session = std::move(m_request.session);
    return std::move(m_outcome);
  }

 private:
  bool fail(const std::string& error) {
    m_outcome.error = error;
    return false;
  }
  void say(const std::string& text) const {
    if (m_hooks.status) m_hooks.status(text);
  }
  void sessionChanged() const {
    if (m_hooks.sessionChanged && m_outcome.rankZero) m_hooks.sessionChanged(m_request.session);
  }

  // The model, the options, and the target split as the session says; the source data when the
  // analysis compares with it.
  bool prepare() {
    Session& session = m_request.session;
    if (!m_request.model || !m_request.model->ok()) {
      return fail(m_request.model ? m_request.model->error() : "no model: open one first");
    }
    if (auto problem = validateTrainOptions(session.options); !problem.empty())
      return fail(problem);
    say("target: " + session.target.describe());
    m_data = m_request.target
                 ? splitTarget(*m_request.target, session.split, session.target.describe())
                 : prepareTarget(session.target, session.split);
    if (!m_data.ok) return fail(m_data.error);
    say("  " + std::to_string(m_data.train.size()) + " to train, " +
        std::to_string(m_data.validation.size()) + " to validate, " +
        std::to_string(m_data.test.size()) + " to test");
    m_source = m_request.source;
    if (!m_source && !session.source.source.empty()) {
      DataSummary summary;
      loadRequestedData(session.source, m_loadedSource, summary);
      if (!summary.ok) return fail(summary.error);
      m_source = &m_loadedSource;
    }
    // Labelled source data in the model's classes also shows what each run forgets.
    if (m_source) {
      if (auto note = attachSource(m_data, *m_source); !note.empty()) say("  " + note);
    }
    return true;
  }

  // Rank 0 chooses the plan: the session's own for "manual", else by its strategy.
  bool choose() {
    if (!m_outcome.rankZero) return true;  // it comes from rank 0 in share()
    const Session& session = m_request.session;
    PlanChoice& choice = m_outcome.choice;
    if (session.strategy == "manual") {  // the layers marked in the app, kept as they are
      choice.ok = !session.plan.trainable.empty();
      choice.plan = session.plan;
      choice.plan.strategy = "manual";
      if (!choice.ok)
        choice.error =
            "strategy manual trains the session's plan, but it marks no layer trainable — mark "
            "layers in the app, or choose another strategy";
      return true;  // shared first, so every rank stops with the same message
    }
    // The analysis compares with the source data when the session says so; the runs measure
    // forgetting on it whenever there is some.
    const Dataset* reference = session.reference == "data" ? m_source : nullptr;
    choice = choosePlan(*m_request.model, session.strategy, m_data, reference, session.options,
                        m_request.probeEpochs, m_hooks.status, m_control, m_hooks.candidateEvent);
    return true;
  }

  // Several processes: rank 0's plan for all, the same data everywhere, a GPU each.
  bool share() {
    auto& collective = m_request.collective;
    if (collective) {
      const std::string data = datasetFingerprint(m_data.train);
      // The wait covers rank 0's analysis or probe runs (a rank 0 that dies closes the store's
      // socket, which ends the wait at once).
      const auto shared = fromText(collective->shareFromRankZero(
          "plan", toText({m_outcome.choice, data}), std::chrono::hours(2)));
      if (!m_outcome.rankZero) m_outcome.choice = shared.choice;
      if (shared.dataFingerprint != data) {
        return fail(collective->environment().describe() +
                    " prepared different training data from rank 0 — every process needs the same "
                    "data files and split settings");
      }
      // One GPU per process on this machine; Gloo carries CUDA tensors through the host.
      auto& device = m_request.session.options.device;
      const auto gpus = static_cast<int>(availableDevices().size()) - 1;  // after "cpu"
      if ((device == "auto" || device == "cuda") && gpus > 0)
        device = "cuda:" + std::to_string(collective->environment().localRank % gpus);
      m_request.session.options.collective = collective;
      m_request.session.options.gradientBucketBytes =
          static_cast<std::size_t>(m_request.bucketMegabytes * (1 << 20));
    }
    if (!m_outcome.choice.ok) return fail(m_outcome.choice.error);
    if (m_hooks.planned) m_hooks.planned(m_outcome.choice);
    return true;
  }

  // The run is in the session from its start, recorded at every evaluation and at its end.
  void train() {
    Session& session = m_request.session;
    session.plan = m_outcome.choice.plan;
    session.options.checkpointPath = m_outcome.rankZero ? m_request.checkpointPath : "";
    SessionRun record;
    record.name = session.strategy;
    record.report.outcome = "running";
    session.runs.push_back(record);
    sessionChanged();
    std::ofstream metrics;
    if (!m_request.metricsPath.empty() && m_outcome.rankZero) {
      metrics.open(m_request.metricsPath, std::ios::trunc);
      if (!metrics) {
        fail("cannot write the metrics log " + m_request.metricsPath +
             " — choose a writable place");
        return;
      }
    }
    FineTuneRun& run = m_outcome.run;
    run = fineTune(
        *m_request.model, m_outcome.choice, m_data, session.options,
        [&](const TrainEvent& event) {
          if (m_hooks.event) m_hooks.event(event);
          if (event.kind != TrainEvent::Kind::Evaluation) return;
          EvaluationPoint point;
          point.epoch = event.epoch;
          point.step = event.step;
          point.validation = event.validation;
          point.trainLoss = event.loss;
          session.runs.back().report.history.push_back(point);
          sessionChanged();
          if (metrics.is_open())
            metrics << metricsLogLine(point, event.totalSteps)
                    << std::endl;  // flushed: others follow it
        },
        m_control);
    session.options.collective.reset();  // not part of what a session keeps
    session.runs.back().report = run.report;
    sessionChanged();
    m_outcome.ok = run.result.ok;
    if (!run.result.ok) m_outcome.error = run.result.error;
  }

  TrainingRequest m_request;
  const TrainingHooks& m_hooks;
  TrainControl* m_control;
  TrainingOutcome m_outcome;
  TargetData m_data;
  Dataset m_loadedSource;
  const Dataset* m_source = nullptr;
};

}  // namespace

TrainingOutcome runTraining(TrainingRequest request, const TrainingHooks& hooks,
                            TrainControl* control) {
  return TrainingRun(std::move(request), hooks, control).run();
}

}  // namespace scalpel
