#include "session_document.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>

#include "util/logging.h"

namespace scalpel::ui {

namespace {

constexpr int kMaxRecentFiles = 8;

}  // namespace

SessionDocument::SessionDocument(QObject* parent) : QObject(parent) {
  m_autosave.setSingleShot(true);
  m_autosave.setInterval(2000);  // coalesces a burst of changes into one write
  connect(&m_autosave, &QTimer::timeout, this, [this] { autosave(); });
}

Session SessionDocument::session() const {
  Session session =
      m_opened;  // what the window does not edit (the split, the reference's details) stays
  if (m_fill) m_fill(session);
  session.runs = m_runs;
  return session;
}

void SessionDocument::addRun(SessionRun run) {
  m_runs.push_back(std::move(run));
  markDirty();
}

void SessionDocument::setRunModel(const RunReport& report, const std::string& path) {
  for (auto& run : m_runs) {
    if (run.report.createdUtc == report.createdUtc && run.name == report.plan.strategy) {
      run.tunedModel = path;
      markDirty();
    }
  }
}

void SessionDocument::markDirty() {
  if (m_restoring) return;
  setDirty(true);
  m_autosave.start();
}

void SessionDocument::setDirty(bool dirty) {
  if (dirty == m_dirty) return;
  m_dirty = dirty;
  Q_EMIT dirtyChanged(dirty);
}

void SessionDocument::reset() {
  m_autosave.stop();
  m_opened = Session{};
  m_runs.clear();
  m_path.clear();
  m_restoring = false;
  setDirty(false);
  Q_EMIT pathChanged(m_path);
}

void SessionDocument::adopt(const Session& session, const QString& path) {
  m_opened = session;
  m_runs = session.runs;
  m_path = path == autosavePath() ? QString() : path;
  setDirty(false);
  Q_EMIT pathChanged(m_path);
}

QString SessionDocument::save(const QString& path) {
  const auto problem = QString::fromStdString(saveSession(session(), path.toStdString()));
  if (!problem.isEmpty()) return problem;
  m_path = path;
  m_autosave.stop();
  setDirty(false);
  addRecentFile(path);
  Q_EMIT pathChanged(m_path);
  return {};
}

QString SessionDocument::autosave() {
  const Session current = session();
  if (current.modelPath.empty()) return {};  // nothing worth restoring yet
  QDir().mkpath(QFileInfo(autosavePath()).absolutePath());
  const auto problem = QString::fromStdString(saveSession(current, autosavePath().toStdString()));
  if (!problem.isEmpty()) logger("ui")->warn("autosave failed: {}", problem.toStdString());
  return problem;
}

QString SessionDocument::autosavePath() {
  const QString folder = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
  return QDir(folder).filePath("autosave-session.json");
}

QString SessionDocument::read(const QString& path, Session& session, QStringList& problems) {
  const auto loaded = loadSession(path.toStdString(), session);
  if (!loaded.ok) return QString::fromStdString(loaded.error);
  for (const auto& line : loaded.missing) problems << QString::fromStdString(line);
  for (const auto& line : loaded.warnings) problems << QString::fromStdString(line);
  for (const auto& line : problems)
    logger("ui")->warn("session {}: {}", path.toStdString(), line.toStdString());
  return {};
}

QString SessionDocument::checkAutosave() {
  const QString path = autosavePath();
  if (!QFileInfo::exists(path)) return {};
  Session session;
  const auto loaded = loadSession(path.toStdString(), session);
  if (loaded.ok) {
    return QStringLiteral(
               "An autosaved session from %1 can be restored: File ▸ Restore Autosaved Session")
        .arg(QFileInfo(path).lastModified().toString("d MMM, hh:mm"));
  }
  // Unreadable (a crash of something else, a hand edit): keep it aside for a look, start clean.
  const QString aside = path + ".unreadable";
  QFile::remove(aside);
  QFile::rename(path, aside);
  logger("ui")->warn("ignored the autosaved session: {} (kept as {})", loaded.error,
                     aside.toStdString());
  return QStringLiteral(
             "The autosaved session could not be read and was ignored (%1); it was kept as %2")
      .arg(QString::fromStdString(loaded.error), aside);
}

QStringList SessionDocument::recentFiles() {
  return QSettings().value("recentFiles").toStringList();
}

void SessionDocument::addRecentFile(const QString& path) {
  QSettings settings;
  QStringList recent = settings.value("recentFiles").toStringList();
  const QString absolute = QFileInfo(path).absoluteFilePath();
  recent.removeAll(absolute);
  recent.prepend(absolute);
  while (recent.size() > kMaxRecentFiles) recent.removeLast();
  settings.setValue("recentFiles", recent);
}

}  // namespace scalpel::ui
