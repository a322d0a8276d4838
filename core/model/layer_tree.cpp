#include "model/layer_tree.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace scalpel {

std::string LayerNode::shortName() const {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

LayerTree::LayerTree(std::vector<LayerNode> nodes) : m_nodes(std::move(nodes)) { resetBlocks(); }

std::optional<int> LayerTree::find(const std::string& name) const {
  for (int i = 0; i < size(); ++i) {
    if (m_nodes[static_cast<size_t>(i)].name == name) return i;
  }
  return std::nullopt;
}

std::vector<int> LayerTree::subtree(int index) const {
  std::vector<int> out;
  std::vector<int> stack{index};
  while (!stack.empty()) {
    const int current = stack.back();
    stack.pop_back();
    out.push_back(current);
    const auto& kids = node(current).children;
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back(*it);
  }
  return out;
}

std::vector<int> LayerTree::preorder() const { return empty() ? std::vector<int>{} : subtree(0); }

int LayerTree::blockOf(int index) const {
  if (index <= 0) return -1;
  int top = index;
  while (node(top).parent > 0) top = node(top).parent;
  for (size_t b = 0; b < m_blocks.size(); ++b) {
    const auto& members = m_blocks[b].members;
    if (std::find(members.begin(), members.end(), top) != members.end()) return static_cast<int>(b);
  }
  return -1;
}

void LayerTree::resetBlocks() {
  m_blocks.clear();
  if (empty()) return;
  const auto& top = m_nodes[0].children;
  const auto leaf = [&](int i) { return node(i).children.empty(); };
  const auto weighted = [&](int i) { return node(i).totalParameters > 0; };
  // What never trains on its own: parameter-free layers (activations, pooling, dropout) and a
  // normalisation, which belongs to the layer it normalises.
  const auto follower = [&](int i) {
    const auto& n = node(i);
    return !weighted(i) ||
           (leaf(i) && (n.hasBatchNormStats || n.typeName.find("Norm") != std::string::npos));
  };
  const auto add = [&](Block& block, int child) {
    block.members.push_back(child);
    block.totalParameters += node(child).totalParameters;
  };
  // The stem: the single layers a model starts with before its first weighted container
  // (torchvision ResNet's conv1, bn1, relu, maxpool).
  std::size_t stemEnd = 0;
  bool stemWeighted = false;
  while (stemEnd < top.size() && leaf(top[stemEnd])) stemWeighted |= weighted(top[stemEnd++]);
  const bool stem = stemEnd >= 2 && stemEnd < top.size() && stemWeighted && !find("stem");
  if (stem) {
    m_blocks.push_back(Block{"stem", {}, 0});
    for (std::size_t k = 0; k < stemEnd; ++k) add(m_blocks.back(), top[k]);
  }
  std::vector<int> leading;  // followers before any weighted layer join the first one
  for (std::size_t k = stem ? stemEnd : 0; k < top.size(); ++k) {
    const int child = top[k];
    if (follower(child)) {
      if (m_blocks.empty()) {
        leading.push_back(child);
      } else {
        add(m_blocks.back(), child);
      }
      continue;
    }
    m_blocks.push_back(Block{node(child).name, {}, 0});
    for (int before : leading) add(m_blocks.back(), before);
    leading.clear();
    add(m_blocks.back(), child);
  }
  if (!leading.empty()) {  // nothing weighted at all
    m_blocks.push_back(Block{node(leading.front()).name, {}, 0});
    for (int child : leading) add(m_blocks.back(), child);
  }
}

std::string LayerTree::regroup(const std::vector<std::vector<std::string>>& groups) {
  if (empty()) return "the model has no layers";
  const auto& top = m_nodes[0].children;
  std::vector<Block> blocks;
  size_t next = 0;  // position in `top` the next member must have
  for (const auto& group : groups) {
    if (group.empty()) return "a block must hold at least one layer";
    Block block;
    for (const auto& name : group) {
      const auto index = find(name);
      if (!index || node(*index).parent != 0) {
        return "'" + name + "' is not a top-level layer of the model";
      }
      if (next >= top.size() || top[next] != *index) {
        return "blocks must list the top-level layers once each, in execution order; '" + name +
               "' is out of place";
      }
      ++next;
      block.members.push_back(*index);
      block.totalParameters += node(*index).totalParameters;
      block.name += (block.name.empty() ? "" : "+") + name;
    }
    blocks.push_back(std::move(block));
  }
  if (next != top.size()) {
    return "blocks leave out '" + node(top[next]).name + "'; every top-level layer needs a block";
  }
  m_blocks = std::move(blocks);
  return {};
}

void LayerTree::setOutputShape(int index, std::vector<std::int64_t> shape) {
  m_nodes.at(static_cast<size_t>(index)).outputShape = std::move(shape);
}

std::string formatShape(const std::vector<std::int64_t>& shape) {
  if (shape.empty()) return "?";
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += "\u00d7";
    out += std::to_string(shape[i]);
  }
  return out;
}

std::optional<std::vector<std::int64_t>> parseShape(const std::string& text) {
  std::string normalised;
  for (size_t i = 0; i < text.size(); ++i) {
    // accept "1,3,224,224", "1x3x224x224" and "1×3×224×224"
    if (text.compare(i, 2, "\u00d7") == 0) {
      normalised += ',';
      ++i;
    } else if (text[i] == 'x' || text[i] == 'X' || text[i] == ' ') {
      normalised += text[i] == ' ' ? "" : ",";
    } else {
      normalised += text[i];
    }
  }
  if (normalised.empty() || normalised.front() == ',' || normalised.back() == ',')
    return std::nullopt;
  std::vector<std::int64_t> shape;
  std::stringstream stream(normalised);
  std::string part;
  while (std::getline(stream, part, ',')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos ||
        part.size() > 9) {
      return std::nullopt;
    }
    const auto value = std::stoll(part);
    if (value <= 0) return std::nullopt;
    shape.push_back(value);
  }
  if (shape.empty()) return std::nullopt;
  return shape;
}

std::string formatCount(std::int64_t count) {
  char buffer[32];
  if (count >= 1'000'000) {
    std::snprintf(buffer, sizeof buffer, "%.1fM", static_cast<double>(count) / 1e6);
  } else if (count >= 10'000) {
    std::snprintf(buffer, sizeof buffer, "%.0fk", static_cast<double>(count) / 1e3);
  } else if (count >= 1'000) {
    std::snprintf(buffer, sizeof buffer, "%.1fk", static_cast<double>(count) / 1e3);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(count));
  }
  return buffer;
}

}  // namespace scalpel
