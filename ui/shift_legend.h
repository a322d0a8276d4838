#pragma once

#include <QWidget>

namespace scalpel::ui {

// The key to the diagram's shift stripes (ShiftScale): one line above the diagram with a colour
// bar from the noise floor to 1000× above it. Lives in the view's top margin, so it never hides
// a block and does not scroll with the scene.
class ShiftLegend : public QWidget {
  Q_OBJECT

 public:
  explicit ShiftLegend(QWidget* parent = nullptr);
  static constexpr int kHeight = 30;

 protected:
  void paintEvent(QPaintEvent* event) override;
};

}  // namespace scalpel::ui
