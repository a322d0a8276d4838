#include "details_pane.h"

#include <QImage>
#include <QUrl>

#include "session_controller.h"

namespace scalpel::ui {

namespace {

QString html(const std::string& text) { return QString::fromStdString(text).toHtmlEscaped(); }

const char* previewUrl(bool target) {
  return target ? "scalpel:target-preview" : "scalpel:source-preview";
}

}  // namespace

DetailsPane::DetailsPane(const SessionController* session, QWidget* parent)
    : QTextBrowser(parent), m_session(session) {
  setMinimumWidth(260);
  showWelcome();
}

void DetailsPane::showWelcome() {
  setHtml(
      "<h3>No model open</h3><p>Open a model with <b>File ▸ Open Model…</b> or drop its file on "
      "this window: TorchScript (<tt>torch.jit.script(model).save(\"model.pt\")</tt>), or the "
      "weights of a torchvision classification model — a state dict "
      "(<tt>torch.save(model.state_dict(), \"model.pth\")</tt>, also DataParallel's and "
      "Lightning's) or <tt>.safetensors</tt>.</p>"
      "<p>Or come back to earlier work: <b>File ▸ Open Session…</b>, <b>Recent Files</b>, or "
      "<b>Restore Autosaved Session</b>.</p>");
}

void DetailsPane::addPreviews() {
  for (const bool target : {true, false}) {
    const auto& data = target ? m_session->targetData() : m_session->sourceData();
    if (!data.ok || data.preview.width <= 0) continue;
    const QImage preview(data.preview.pixels.data(), data.preview.width, data.preview.height,
                         data.preview.width * 3, QImage::Format_RGB888);
    document()->addResource(QTextDocument::ImageResource, QUrl(previewUrl(target)),
                            preview.copy());  // copy: the pixels are not ours
  }
}

void DetailsPane::showNode(int node) {
  addPreviews();
  const auto& tree = m_session->inspection().tree;
  if (!m_session->hasModel() || tree.empty()) {  // no model yet: show what data there is
    if (m_session->targetData().ok || m_session->sourceData().ok) {
      setHtml(dataHtml(true) + dataHtml(false));
    } else {
      showWelcome();
    }
    return;
  }
  setHtml(node <= 0 || node >= tree.size()
              ? modelHtml() + diagnosisHtml() + dataHtml(true) + dataHtml(false)
              : layerHtml(node));
}

void DetailsPane::scrollToDiagnosis() { scrollToAnchor("diagnosis"); }

QString DetailsPane::modelHtml() const {
  const auto& inspection = m_session->inspection();
  const auto& tree = inspection.tree;
  QString text = QStringLiteral("<h3>%1</h3><p><tt>%2</tt></p>")
                     .arg(html(tree.node(0).typeName), html(inspection.path));
  text += QStringLiteral("<p>%1 parameters · %2 modules · %3 blocks<br>input %4</p>")
              .arg(QString::number(tree.node(0).totalParameters))
              .arg(tree.size() - 1)
              .arg(tree.blocks().size())
              .arg(html(formatShape(inspection.inputShape)));
  if (!inspection.metadata.classNames.empty())
    text += QStringLiteral("<p>%1 classes</p>").arg(inspection.metadata.classNames.size());
  if (!inspection.metadata.architecture.empty()) {
    text += QStringLiteral("<p>%1, rebuilt as torchvision's <b>%2</b></p>")
                .arg(html(inspection.format), html(inspection.metadata.architecture));
  }
  text += QStringLiteral(
              "<p>Preprocessing: %1 <span style='color:#555'>(File ▸ Open Data… "
              "chooses another)</span></p>")
              .arg(html(preprocessingText(inspection.metadata)));
  for (const auto& note : inspection.notes) text += QStringLiteral("<p>%1</p>").arg(html(note));
  for (const auto& warning : inspection.warnings)
    text += QStringLiteral("<p style='color:#a15c00'>⚠ %1</p>").arg(html(warning));
  return text +
         "<p style='color:#555'>Click ▸ or double-click a block to see its layers; click a layer "
         "for its details.</p>";
}

QString DetailsPane::layerHtml(int index) const {
  const auto& tree = m_session->inspection().tree;
  const auto& node = tree.node(index);
  QString text = QStringLiteral("<h3>%1</h3><p>%2</p>").arg(html(node.name), html(node.typeName));
  return text + QStringLiteral(
                    "<table cellpadding=2>"
                    "<tr><td>block</td><td>%1</td></tr>"
                    "<tr><td>parameters</td><td>%2 (own %3)</td></tr>"
                    "<tr><td>output</td><td>%4</td></tr>"
                    "<tr><td>calls per forward</td><td>%5</td></tr>"
                    "<tr><td>BatchNorm statistics</td><td>%6</td></tr></table>")
                    .arg(html(tree.blocks().at(static_cast<size_t>(tree.blockOf(index))).name))
                    .arg(node.totalParameters)
                    .arg(node.ownParameters)
                    .arg(html(formatShape(node.outputShape)))
                    .arg(node.callCount)
                    .arg(node.hasBatchNormStats ? "yes" : "no");
}

QString DetailsPane::diagnosisHtml() const {
  const auto& diagnosis = m_session->diagnosis();
  if (!diagnosis) return {};
  const auto& plan = m_session->suggestedPlan();
  QString text = QStringLiteral("<a name='diagnosis'></a><h4>Diagnosis: %1</h4><p>%2</p><ul>")
                     .arg(html(shiftKindName(diagnosis->kind)), html(diagnosis->summary));
  for (const auto& line : diagnosis->evidence)
    text += QStringLiteral("<li>%1</li>").arg(html(line));
  text += QStringLiteral("</ul><p><b>Suggestion:</b> %1").arg(html(plan.explanation));
  if (!plan.trainable.empty()) {
    QStringList modules;
    for (const auto& m : plan.trainable) modules << html(m);
    text += QStringLiteral("<br>train: <tt>%1</tt>; freeze the rest").arg(modules.join(", "));
  }
  return text + "</p>";
}

QString DetailsPane::dataHtml(bool target) const {
  const auto& data = target ? m_session->targetData() : m_session->sourceData();
  if (!data.ok) return {};
  QString text =
      QStringLiteral("<h4>%1</h4><p><tt>%2</tt><br>%3 items of %4 · %5</p>")
          .arg(target ? "Target data (shifted)" : "Source reference", html(data.description))
          .arg(data.items)
          .arg(html(formatShape(data.itemShape)))
          .arg(html(data.labelling()));
  if (data.preview.width > 0) {
    const bool shifted = target && data.description.find(" + ") != std::string::npos;
    text += QStringLiteral("<p><img src='%1'><br><span style='color:#555'>%2</span></p>")
                .arg(previewUrl(target),
                     shifted ? "top: clean · bottom: as the model will see them" : "samples");
  }
  for (const auto& note : data.notes)
    text += QStringLiteral("<p style='color:#555'>%1</p>").arg(html(note));
  for (const auto& warning : data.warnings)
    text += QStringLiteral("<p style='color:#a15c00'>⚠ %1</p>").arg(html(warning));
  return text;
}

}  // namespace scalpel::ui
