// writeReportFolder(): a run report as Markdown with PNG charts, for a person to read or attach to
// a lab notebook. Declared in run_report.h; the JSON side lives in run_report_json.cpp.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <utility>

#include "files/atomic_file.h"
#include "io/png_plot.h"
#include "io/run_report.h"
#include "util/number_text.h"

namespace scalpel {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCurvesFile = "curves.png";
constexpr const char* kShiftFile = "layer-shift.png";

// snprintf into a string; the patterns are literals, the results short.
template <typename... Args>
std::string format(const char* pattern, Args... args) {
  char text[512];
  std::snprintf(text, sizeof text, pattern, args...);
  return text;
}

// Markdown table cells must not hold '|' or line breaks.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else {
      out += (c == '\n' || c == '\r') ? ' ' : c;
    }
  }
  return out.empty() ? "–" : out;
}

// "+1.2 pp": the change from before to after, not to be confused with points(fraction)
std::string pointsGained(double before, double after) {
  return std::isfinite(after - before) ? format("%+.1f pp", 100 * (after - before)) : "n/a";
}
std::string number(double value) { return std::isfinite(value) ? format("%.4f", value) : "n/a"; }
std::string count(std::int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (value < 0 ? "-" : "") + out;
}

bool evaluated(const Evaluation& e) { return e.items > 0; }

PlotSeries series(const std::string& name, Rgb colour, bool line = true) {
  PlotSeries s;
  s.name = name;
  s.colour = colour;
  s.line = line;
  return s;
}

LineChart lineChart(const std::string& title, const std::string& yLabel,
                    std::vector<PlotSeries> series) {
  LineChart chart;
  chart.title = title;
  chart.xLabel = "step";
  chart.yLabel = yLabel;
  chart.series = std::move(series);
  return chart;
}

// Loss and accuracy per evaluation, starting from the unmodified model at step 0 when it was
// evaluated; the best evaluation marked.
RgbImage renderCurves(const RunReport& r) {
  const std::string score = r.validationBefore.scoreName();  // accuracy, or R² for regression
  PlotSeries train = series("training loss", plotPalette(0));
  PlotSeries validation = series("validation loss", plotPalette(1));
  PlotSeries accuracy = series("validation " + score, plotPalette(2));
  PlotSeries best = series("best", plotPalette(1), false);
  PlotSeries bestAccuracy = series("best", plotPalette(1), false);
  if (evaluated(r.validationBefore)) {
    validation.x.push_back(0), validation.y.push_back(r.validationBefore.loss);
    accuracy.x.push_back(0), accuracy.y.push_back(100 * r.validationBefore.score());
  }
  for (std::size_t i = 0; i < r.history.size(); ++i) {
    const auto& p = r.history[i];
    const auto step = static_cast<double>(p.step);
    train.x.push_back(step), train.y.push_back(p.trainLoss);
    validation.x.push_back(step), validation.y.push_back(p.validation.loss);
    accuracy.x.push_back(step), accuracy.y.push_back(100 * p.validation.score());
    if (static_cast<int>(i) == r.bestEvaluation) {
      best.x = {step}, best.y = {p.validation.loss};
      bestAccuracy.x = {step}, bestAccuracy.y = {100 * p.validation.score()};
    }
  }
  LineChart loss = lineChart("Loss", "loss", {train, validation});
  LineChart acc = lineChart("Validation " + score, score + " (%)", {accuracy});
  if (!best.x.empty()) loss.series.push_back(best), acc.series.push_back(bestAccuracy);
  return stackImages({renderLineChart(loss), renderLineChart(acc)});
}

RgbImage renderShifts(const RunReport& r) {
  BarChart chart;
  chart.title = "Activation shift per layer (source vs target)";
  chart.valueLabel = "KL divergence (log scale)";
  chart.valueName = "KL";
  chart.markerName = "noise floor";
  chart.logScale = true;
  for (const auto& s : r.layerShifts) {
    chart.names.push_back(s.layer), chart.values.push_back(s.kl),
        chart.markers.push_back(s.noiseFloor);
  }
  // One band of 30 px per layer, at least the default height.
  chart.height = std::max(450, 150 + 30 * static_cast<int>(r.layerShifts.size()));
  return renderBarChart(chart);
}

std::string markdown(const RunReport& r, bool curves) {
  std::string md = "# Scalpel fine-tuning report\n\n";
  md += "- **Model:** `" + r.modelPath + "`" +
        (r.modelFingerprint.empty() ? "" : " (`" + r.modelFingerprint + "`)") + "\n";
  if (!r.createdUtc.empty()) md += "- **Created:** " + r.createdUtc + "\n";
  if (!r.device.empty()) md += "- **Device:** " + r.device + "\n";
  md += "- **Outcome:** " + (r.outcome.empty() ? std::string("unknown") : r.outcome);
  md += format(" after %zu steps in %.1f s\n", r.steps, r.seconds);
  if (!r.message.empty()) md += "- **Message:** " + r.message + "\n";
  if (!r.frozenCache.empty()) md += "- **Frozen part:** " + r.frozenCache + "\n";
  if (r.resumedEpochs > 0) {
    md += format("- **Went on from the plan search's run** after %d epoch%s\n", r.resumedEpochs,
                 r.resumedEpochs == 1 ? "" : "s");
  }
  const std::string score = r.validationBefore.scoreName();  // accuracy, or R² for regression
  if (evaluated(r.validationAfter)) {
    md += "- **Validation " + score + ":** " + percent(r.validationBefore.score()) + " → " +
          percent(r.validationAfter.score()) + " (" +
          pointsGained(r.validationBefore.score(), r.validationAfter.score()) + ")\n";
  }
  if (evaluated(r.testAfter)) {
    md += "- **Test " + score + ":** " + percent(r.testBefore.score()) + " → " +
          percent(r.testAfter.score()) + " (" +
          pointsGained(r.testBefore.score(), r.testAfter.score()) + ")\n";
  }
  if (evaluated(r.sourceAfter)) {
    md += "- **Source " + score + "** (what is kept): " + percent(r.sourceBefore.score()) + " → " +
          percent(r.sourceAfter.score()) + " (" +
          pointsGained(r.sourceBefore.score(), r.sourceAfter.score()) + ")\n";
  }

  md += "\n## Diagnosis\n\n";
  md += r.diagnosis.empty() ? "The shift advisor did not run.\n" : r.diagnosis + "\n";
  if (!r.evidence.empty()) md += "\n";
  for (const auto& e : r.evidence) md += "- " + e + "\n";

  md += "\n## Freeze plan\n\n";
  md += "- **Strategy:** `" + (r.plan.strategy.empty() ? std::string("none") : r.plan.strategy) +
        "`\n";
  const auto total = r.trainableParameters + r.frozenParameters;
  md += "- **Trainable parameters:** " + count(r.trainableParameters) +
        (total > 0 ? format(" of %s (%.1f%%)", count(total).c_str(),
                            100.0 * r.trainableParameters / total)
                   : "") +
        "\n";
  md += "- **Frozen parameters:** " + count(r.frozenParameters) + "\n";
  if (!r.plan.explanation.empty()) md += "\n" + r.plan.explanation + "\n";
  if (!r.plan.batchNorm.empty() || r.plan.recalibrate)
    md += "\n- **BatchNorm:** " + batchNormModeName(r.plan, r.options.batchNormEval) + "\n";
  if (!r.search.candidates.empty()) {
    md += "\nThe candidates the search tried (validation " + r.search.scoreName +
          " per round):\n\n```\n" + searchTable(r.search) + "```\n";
  }
  if (!r.plan.trainable.empty()) {
    md += "\n| Trainable module | Learning-rate scale |\n|---|---:|\n";
    for (const auto& module : r.plan.trainable) {
      const auto scale = r.plan.learningRateScale.find(module);
      md += "| `" + cell(module) + "` | " +
            format("%.3g", scale == r.plan.learningRateScale.end() ? 1.0 : scale->second) + " |\n";
    }
  }

  const auto& o = r.options;
  md += "\n## Hyper-parameters\n\n| Setting | Value |\n|---|---|\n";
  md += "| optimiser | " + cell(o.optimizer) + " |\n";
  md += format("| learning rate | %g |\n| weight decay | %g |\n", o.learningRate, o.weightDecay);
  if (o.optimizer == "sgd") md += format("| momentum | %g |\n", o.momentum);
  md += "| schedule | " + cell(o.schedule) + " |\n";
  md += o.warmupFraction > 0 ? format("| warm-up | %g%% of the steps |\n", 100 * o.warmupFraction)
                             : "| warm-up | none |\n";
  md += format("| batch size | %zu |\n| epochs | %d |\n", o.batchSize, o.epochs);
  md += o.maxSteps ? format("| step budget | %zu |\n", o.maxSteps) : "| step budget | none |\n";
  md += "| loss | " + cell(o.loss) + " |\n";
  md += o.evaluateEverySteps ? format("| evaluate every | %zu steps |\n", o.evaluateEverySteps)
                             : "| evaluate every | epoch |\n";
  md += "| best state by | validation " + cell(o.selectBy) + " |\n";
  md +=
      o.patience ? format("| patience | %d evaluations |\n", o.patience) : "| patience | none |\n";
  md += std::string("| BatchNorm | ") +
        (o.batchNormEval ? "eval mode everywhere" : "eval mode where frozen") + " |\n";
  md += format("| seed | %llu |\n", static_cast<unsigned long long>(o.seed));
  md += "| device option | " + cell(o.device) + " |\n";

  md += "\n## Data\n\n";
  if (r.data.empty()) {
    md += "No data sets were recorded.\n";
  } else {
    md += "| Role | Description | Items | Fingerprint |\n|---|---|---:|---|\n";
    for (const auto& d : r.data) {
      md += "| " + cell(d.role) + " | " + cell(d.description) + " | " + std::to_string(d.items) +
            " | `" + cell(d.fingerprint) + "` |\n";
    }
  }

  md += "\n## Metrics\n\nBefore: the unmodified model. After: the best state.\n\n";
  md += "| Metric | Before | After | Change |\n|---|---:|---:|---:|\n";
  const auto metrics = [&](const char* split, const Evaluation& before, const Evaluation& after) {
    if (!evaluated(before) && !evaluated(after)) return;
    md += std::string("| ") + split + " loss | " + number(before.loss) + " | " +
          number(after.loss) + " | " + format("%+.4f", after.loss - before.loss) + " |\n";
    md += std::string("| ") + split + " " + score + " | " + percent(before.score()) + " | " +
          percent(after.score()) + " | " + pointsGained(before.score(), after.score()) + " |\n";
    if (before.regression || after.regression) {
      md += std::string("| ") + split + " mean absolute error | " +
            number(before.meanAbsoluteError) + " | " + number(after.meanAbsoluteError) + " | " +
            format("%+.4f", after.meanAbsoluteError - before.meanAbsoluteError) + " |\n";
    }
  };
  metrics("validation", r.validationBefore, r.validationAfter);
  metrics("test", r.testBefore, r.testAfter);
  metrics("source", r.sourceBefore, r.sourceAfter);
  if (r.bestEvaluation >= 0 && r.bestEvaluation < static_cast<int>(r.history.size())) {
    const auto& b = r.history[static_cast<std::size_t>(r.bestEvaluation)];
    md += format("\nBest evaluation: #%d (epoch %d, step %zu), validation %s %s, loss %s.\n",
                 r.bestEvaluation + 1, b.epoch + 1, b.step, score.c_str(),
                 percent(b.validation.score()).c_str(), number(b.validation.loss).c_str());
  } else {
    md += "\nBest evaluation: none — the unmodified model stayed best.\n";
  }
  const auto& pb = r.testBefore.perClassAccuracy;
  const auto& pa = r.testAfter.perClassAccuracy;
  if (!pb.empty() || !pa.empty()) {
    md +=
        "\n### Test accuracy per class\n\n| Class | Before | After | Change "
        "|\n|---:|---:|---:|---:|\n";
    const auto at = [](const std::vector<double>& v, std::size_t i) {
      return i < v.size() ? v[i] : NAN;
    };
    for (std::size_t c = 0; c < std::max(pb.size(), pa.size()); ++c) {
      md += format("| %zu | %s | %s | %s |\n", c, percent(at(pb, c)).c_str(),
                   percent(at(pa, c)).c_str(), pointsGained(at(pb, c), at(pa, c)).c_str());
    }
  }

  md += "\n## Training curves\n\n";
  md += curves ? "![Loss and validation " + score + " per evaluation](" + kCurvesFile + ")\n"
               : "No evaluations were recorded.\n";
  if (!r.history.empty()) {
    md += "\n| # | Epoch | Step | Training loss | Validation loss | Validation " + score +
          " | |\n"
          "|---:|---:|---:|---:|---:|---:|---|\n";
    for (std::size_t i = 0; i < r.history.size(); ++i) {
      const auto& p = r.history[i];
      md += format("| %zu | %d | %zu | %s | %s | %s | %s |\n", i + 1, p.epoch + 1, p.step,
                   number(p.trainLoss).c_str(), number(p.validation.loss).c_str(),
                   percent(p.validation.score()).c_str(),
                   static_cast<int>(i) == r.bestEvaluation ? "best" : "");
    }
  }

  if (!r.layerShifts.empty()) {
    md += std::string("\n## Layer shifts\n\n![Activation shift per layer](") + kShiftFile + ")\n\n";
    md += "| Layer | KL | Noise floor | × noise floor |\n|---|---:|---:|---:|\n";
    for (const auto& s : r.layerShifts) {
      md += "| `" + cell(s.layer) + "` | " + format("%.4g | %.4g | ", s.kl, s.noiseFloor) +
            (s.noiseFloor > 0 ? format("%.1f", s.kl / s.noiseFloor) : std::string("n/a")) + " |\n";
    }
  }

  md += "\n## Versions\n\n";
  md +=
      "- Scalpel " + (r.scalpelVersion.empty() ? std::string("unknown") : r.scalpelVersion) + "\n";
  md += "- LibTorch " + (r.torchVersion.empty() ? std::string("unknown") : r.torchVersion) + "\n";
  md += format("- Report format %d\n", r.format);
  return md;
}

}  // namespace

std::string writeReportFolder(const RunReport& report, const fs::path& folder) {
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) {
    return "cannot create the report folder " + folder.string() + " (" + error.message() + ")";
  }
  // Each file is written whole or not at all, the charts first so that report.md never links a
  // missing one. A chart this report does not have is stale (from an earlier report): removed.
  const bool curves = !report.history.empty() || evaluated(report.validationBefore);
  const std::pair<const char*, std::string> charts[] = {
      {kCurvesFile, curves ? encodePng(renderCurves(report)) : std::string()},
      {kShiftFile, report.layerShifts.empty() ? std::string() : encodePng(renderShifts(report))}};
  for (const auto& [name, png] : charts) {
    if (png.empty()) {
      fs::remove(folder / name, error);
    } else if (auto problem = writeFileAtomically(folder / name, png); !problem.empty()) {
      return problem;
    }
  }
  return writeFileAtomically(folder / "report.md", markdown(report, curves));
}

}  // namespace scalpel
