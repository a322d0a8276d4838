#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace scalpel {

// One named module of a model. Plain data so the UI can hold it without torch.
struct LayerNode {
  std::string name;                  // dotted path as in named_modules(); "" for the model itself
  std::string typeName;              // class name without its module path, e.g. "Conv2d"
  int depth = 0;                     // 0 for the model, 1 for its children, ...
  int parent = -1;                   // index into LayerTree::nodes(), -1 for the model
  std::vector<int> children;         // indices, in execution order
  std::int64_t ownParameters = 0;    // parameters held by this module itself
  std::int64_t totalParameters = 0;  // including all descendants
  bool hasBatchNormStats = false;    // holds running_mean / running_var buffers
  int callCount = 0;  // forward calls in one pass of the model's forward; 0 = never called
  std::vector<std::int64_t> outputShape;  // of the first call; empty until probed
  bool freshHead = false;  // a new classifier layer (untrained weights): it always trains

  // The last path component, e.g. "conv1" for "layer1.0.conv1".
  std::string shortName() const;
};

// A contiguous group of top-level children that trains or freezes together
// (the paper's "block": stem | layer1 | ... | head).
struct Block {
  std::string name;
  std::vector<int> members;  // top-level node indices, in execution order

  std::int64_t totalParameters = 0;
};

// The module hierarchy of a model in forward-execution order, and its blocks.
class LayerTree {
 public:
  LayerTree() = default;
  // `nodes` must have the model at index 0 and list every node after its parent;
  // children lists are taken as given (execution order).
  explicit LayerTree(std::vector<LayerNode> nodes);

  const std::vector<LayerNode>& nodes() const { return m_nodes; }
  const LayerNode& node(int index) const { return m_nodes.at(static_cast<size_t>(index)); }
  int size() const { return static_cast<int>(m_nodes.size()); }
  bool empty() const { return m_nodes.empty(); }
  std::optional<int> find(const std::string& name) const;

  // Node indices of the whole tree in depth-first execution order, the model first.
  std::vector<int> preorder() const;
  // `index` and all its descendants in depth-first execution order.
  std::vector<int> subtree(int index) const;

  const std::vector<Block>& blocks() const { return m_blocks; }
  // Which block a node belongs to (-1 for the model itself).
  int blockOf(int index) const;
  // Regroups the top-level children into blocks. Each group lists top-level child names;
  // together they must cover every child exactly once, in execution order.
  // Returns an empty string on success, else what is wrong (and leaves the blocks as they were).
  std::string regroup(const std::vector<std::vector<std::string>>& groups);
  // The default blocks: one per top-level child that has weights of its own kind, with the
  // parameter-free layers and normalisations after it; the single layers before the first
  // weighted container form "stem" (torchvision ResNet's conv1, bn1, relu, maxpool).
  void resetBlocks();

  void setOutputShape(int index, std::vector<std::int64_t> shape);

 private:
  std::vector<LayerNode> m_nodes;
  std::vector<Block> m_blocks;
};

// Formats a shape as "1×3×224×224" (or "?" when unknown).
std::string formatShape(const std::vector<std::int64_t>& shape);
// Parses "1,3,224,224" (or with x/×); returns nullopt when malformed.
std::optional<std::vector<std::int64_t>> parseShape(const std::string& text);
// 11689512 -> "11.7M"
std::string formatCount(std::int64_t count);

}  // namespace scalpel
