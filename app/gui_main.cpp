// scalpel: the desktop application. Parses arguments, sets up logging, opens the main window.

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>
#include <QTimer>

#include "app_paths.h"
#include "checkpoint/architecture_library.h"
#include "main_window.h"
#include "scalpel/version.h"
#include "session_controller.h"
#include "util/logging.h"
#include "util/threads.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  if (const auto dir = scalpel::app::architectureDir(); !dir.empty()) {
    scalpel::setArchitectureLibraryDir(dir);  // installed: share/scalpel/architectures
  }
  QApplication::setApplicationName("Scalpel");
  QApplication::setOrganizationName("Scalpel");
  QApplication::setApplicationVersion(scalpel::kVersion);

  QCommandLineParser parser;
  parser.setApplicationDescription("Scalpel: visual surgical fine-tuning of TorchScript models");
  parser.addHelpOption();
  parser.addVersionOption();
  const QCommandLineOption demo("demo", "Open the built-in demo model.");
  const QCommandLineOption screenshot(
      "screenshot",
      "Save a picture of the window to FILE once the model is shown (with --demo: once its data "
      "is analysed), then quit.",
      "FILE");
  parser.addOption(demo);
  parser.addOption(screenshot);
  parser.addPositionalArgument(
      "file", "A model (state dict, .safetensors or TorchScript) or a saved session to open.",
      "[model.pth | model.safetensors | model.pt | session.json]");
  parser.process(app);

  scalpel::initLogging(
      "info", QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation).toStdString());
  scalpel::useAllCores();

  scalpel::ui::MainWindow window;
  if (!parser.isSet(screenshot)) {  // screenshots keep the default layout, so they compare
    QSettings settings;
    window.restoreGeometry(settings.value("windowGeometry").toByteArray());
    window.restoreState(settings.value("windowState").toByteArray());
  }
  window.show();

  if (!parser.positionalArguments().isEmpty()) {
    window.openFile(parser.positionalArguments().front());  // a model or a session
  } else if (parser.isSet(demo)) {
    const QString trained = QString::fromStdString(scalpel::app::demoModelPath());
    QDir().mkpath(QFileInfo(trained).absolutePath());  // ~/.cache/scalpel when installed
    window.session()->openDemo(
        QString::fromStdString(scalpel::app::demoArchitectureDir()) + "/demo_untrained.pt",
        trained);
  }

  if (parser.isSet(screenshot)) {
    const QString file = parser.value(screenshot);
    const auto save = [&window, file] {
      window.grab().save(file);
      // exit(), not quit(): quit() closes the window first, which would ask to save the session.
      QApplication::exit(0);
    };
    // The demo goes on to load its data and analyse it: picture the finished window.
    if (parser.isSet(demo) && parser.positionalArguments().isEmpty()) {
      QObject::connect(window.session(), &scalpel::ui::SessionController::analysisFinished, &window,
                       save);
    } else {
      QObject::connect(window.session(), &scalpel::ui::SessionController::modelOpened, &window,
                       save);
    }
    QObject::connect(window.session(), &scalpel::ui::SessionController::modelFailed, &window,
                     [save] { QTimer::singleShot(200, save); });
  }
  return app.exec();
}
