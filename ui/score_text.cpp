#include "score_text.h"

#include "util/number_text.h"

namespace scalpel::ui {

QString percent(double fraction) { return QString::fromStdString(scalpel::percent(fraction)); }

QString scoreChange(const Evaluation& before, const Evaluation& after, bool boldAfter) {
  const QString to = boldAfter ? "<b>" + percent(after.score()) + "</b>" : percent(after.score());
  QString text = percent(before.score()) + " → " + to;
  if (after.regression) {
    text += QString(" (mean absolute error %1 → %2)")
                .arg(before.meanAbsoluteError, 0, 'g', 4)
                .arg(after.meanAbsoluteError, 0, 'g', 4);
  }
  return text;
}

QString planDescription(const QString& strategy) {
  if (strategy == "auto")
    return "Tries the advisor's plan against its neighbours, Auto-RGN, every layer and BatchNorm "
           "recalibration in short runs, then trains the one that does best on validation data.";
  if (strategy == "diagnosis") return "Trains what the analysis suggests, without trying it.";
  if (strategy == "recalibrate")
    return "Trains nothing: re-estimates every BatchNorm's statistics on the target data.";
  if (strategy == "auto-rgn")
    return "Trains every layer, each at a learning rate scaled by its relative gradient norm (the "
           "paper).";
  if (strategy == "probe")
    return "Trains each block briefly, then keeps the best on validation data.";
  if (strategy == "last") return "Trains only the last block.";
  if (strategy == "all") return "Trains every layer (ordinary fine-tuning).";
  if (strategy == "manual") return "Trains the layers ticked in the diagram and the layer table.";
  if (strategy.startsWith("block:")) return "Trains only " + strategy.mid(6) + ".";
  return {};
}

QString planLabel(const QString& strategy) {
  return strategy.startsWith("block:") ? "only " + strategy.mid(6) : strategy;
}

}  // namespace scalpel::ui
