#include "layer_scores.h"

#include <cmath>
#include <limits>

#include "shift_scale.h"

namespace scalpel::ui {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool higher(double level, double than) {
  return !std::isnan(level) && (std::isnan(than) || level > than);
}

}  // namespace

LayerScores::LayerScores(QObject* parent) : QObject(parent) {
  m_coalesce.setSingleShot(true);
  m_coalesce.setInterval(40);
  connect(&m_coalesce, &QTimer::timeout, this, &LayerScores::changed);
}

void LayerScores::setTree(const LayerTree& tree) {
  m_tree = tree;
  clear();
}

void LayerScores::clear() {
  m_snapshots.clear();
  m_gradients = {};
  m_level.fill(kNaN, m_tree.size());
  m_score.fill(-1, m_tree.size());
  m_rgn.fill(kNaN, m_tree.size());
  m_blockRgn.fill(kNaN, static_cast<int>(m_tree.blocks().size()));
  scheduleChanged();
}

void LayerScores::addSnapshot(const ShiftSnapshot& snapshot) {
  m_snapshots.push_back(snapshot);
  rebuildLatest();
  scheduleChanged();
}

void LayerScores::setGradients(const GradientProfile& gradients) {
  m_gradients = gradients;
  m_rgn.fill(kNaN, m_tree.size());
  m_blockRgn.fill(kNaN, static_cast<int>(m_tree.blocks().size()));
  for (const auto& module : gradients.modules) {
    if (module.index >= 0 && module.index < m_rgn.size()) m_rgn[module.index] = module.rgn;
  }
  for (const auto& block : gradients.blocks) {
    if (block.index >= 0 && block.index < m_blockRgn.size()) m_blockRgn[block.index] = block.rgn;
  }
  scheduleChanged();
}

void LayerScores::flush() {
  if (!m_coalesce.isActive()) return;
  m_coalesce.stop();
  Q_EMIT changed();
}

void LayerScores::scheduleChanged() {
  if (!m_coalesce.isActive()) m_coalesce.start();
}

void LayerScores::rebuildLatest() {
  m_level.fill(kNaN, m_tree.size());
  m_score.fill(-1, m_tree.size());
  const auto& layers = m_snapshots.back().layers;
  for (int i = 0; i < static_cast<int>(layers.size()); ++i) {
    const auto& score = layers[static_cast<std::size_t>(i)];
    if (score.node < 0 || score.node >= m_tree.size()) continue;
    const double level = ShiftScale::level(score.kl, score.noiseFloor);
    if (m_score[score.node] < 0 || higher(level, m_level[score.node])) m_score[score.node] = i;
    // The module and every container above it show the highest score inside.
    for (int at = score.node; at >= 0; at = m_tree.node(at).parent) {
      if (higher(level, m_level[at])) m_level[at] = level;
    }
  }
}

double LayerScores::level(int node) const {
  return node >= 0 && node < m_level.size() ? m_level[node] : kNaN;
}

double LayerScores::blockLevel(int block) const {
  double highest = kNaN;
  if (block < 0 || block >= static_cast<int>(m_tree.blocks().size())) return highest;
  for (int member : m_tree.blocks()[static_cast<std::size_t>(block)].members) {
    if (higher(level(member), highest)) highest = level(member);
  }
  return highest;
}

const LayerScore* LayerScores::score(int node) const {
  if (node < 0 || node >= m_score.size() || m_score[node] < 0 || m_snapshots.empty())
    return nullptr;
  return &m_snapshots.back().layers[static_cast<std::size_t>(m_score[node])];
}

double LayerScores::rgn(int node) const {
  return node >= 0 && node < m_rgn.size() ? m_rgn[node] : kNaN;
}

double LayerScores::blockRgn(int block) const {
  return block >= 0 && block < m_blockRgn.size() ? m_blockRgn[block] : kNaN;
}

}  // namespace scalpel::ui
