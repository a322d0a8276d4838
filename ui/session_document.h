#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <QTimer>

#include <functional>
#include <vector>

#include "io/session.h"

namespace scalpel::ui {

// The session as a document, as Tiled's MapDocument is the map's: what is saved (core's
// Session), the file it lives in, whether there are unsaved changes, the autosave and the recent
// files. No widgets, no jobs: the SessionController says what changed, and what the session holds
// at any moment is what was opened, with the controller's state on top (setCurrent) and the runs
// kept here.
class SessionDocument : public QObject {
  Q_OBJECT

 public:
  explicit SessionDocument(QObject* parent = nullptr);

  // Writes the controller's state into a session (model, data, reference, plan, settings); asked
  // at every save.
  void setCurrent(std::function<void(Session&)> fill) { m_fill = std::move(fill); }
  // What a save writes: the current state, the runs, and what was opened with the file that
  // nothing edits (the split, the reference's details).
  Session session() const;

  const std::vector<SessionRun>& runs() const { return m_runs; }
  void addRun(SessionRun run);
  // Where the run of `report` wrote its tuned model.
  void setRunModel(const RunReport& report, const std::string& path);

  const QString& path() const { return m_path; }  // "" until saved or opened
  bool isDirty() const { return m_dirty; }
  // Unsaved changes, unless a session is being restored; the autosave follows shortly.
  void markDirty();
  void markClean() { setDirty(false); }
  void setRestoring(bool restoring) { m_restoring = restoring; }
  bool isRestoring() const { return m_restoring; }

  // A new, empty session.
  void reset();
  // A session read from `path` becomes this document (its runs, its untouched fields); the
  // autosave is not a file of its own, so Save then asks where.
  void adopt(const Session& session, const QString& path);
  // Writes the session to `path` atomically and makes it the document's file. "" or the error
  // (the previous file is then intact).
  QString save(const QString& path);
  // Writes the autosave (when a model is open). "" or the error, which is only logged.
  QString autosave();

  static QString autosavePath();
  // Reads a session file. "" (and `session` filled, `problems` naming what is missing or odd) or
  // why it cannot be read.
  static QString read(const QString& path, Session& session, QStringList& problems);
  // At start: what the status line says about the autosave ("" when there is none). An
  // unreadable one is set aside (as .unreadable), so the next start is clean.
  static QString checkAutosave();
  static QStringList recentFiles();
  static void addRecentFile(const QString& path);

 Q_SIGNALS:
  void dirtyChanged(bool dirty);
  void pathChanged(const QString& path);

 private:
  void setDirty(bool dirty);

  std::function<void(Session&)> m_fill;
  Session m_opened;  // as opened (the fields the window does not edit)
  std::vector<SessionRun> m_runs;
  QString m_path;
  bool m_dirty = false;
  bool m_restoring = false;
  QTimer m_autosave;
};

}  // namespace scalpel::ui
