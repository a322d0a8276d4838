#include "score_text.h"

namespace scalpel::ui {

QString percent(double fraction) { return QString::number(100 * fraction, 'f', 1) + "%"; }

QString scoreChange(const Evaluation& before, const Evaluation& after, bool boldAfter) {
  const QString to = boldAfter ? "<b>" + percent(after.score()) + "</b>" : percent(after.score());
  QString text = percent(before.score()) + " → " + to;
  if (after.regression) {
    text += QString(" (mean absolute error %1 → %2)").arg(before.meanAbsoluteError, 0, 'g', 4).arg(after.meanAbsoluteError, 0, 'g', 4);
  }
  return text;
}

}  // namespace scalpel::ui
