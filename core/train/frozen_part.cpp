#include "train/frozen_part.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace scalpel {

namespace jit = torch::jit;

namespace {

bool isModule(const jit::Value* value) { return value->type()->kind() == c10::TypeKind::ClassType; }

// Operators that draw random numbers: in the frozen part they would not repeat every epoch.
bool isRandom(const jit::Node* node) {
  static const std::set<std::string> random{
      "aten::rand",     "aten::rand_like",       "aten::randn",       "aten::randn_like",
      "aten::randint",  "aten::bernoulli",       "aten::bernoulli_",  "aten::normal",
      "aten::normal_",  "aten::uniform_",        "aten::multinomial", "aten::rrelu",
      "aten::randperm", "aten::rrelu_with_noise"};
  return random.count(node->kind().toQualString()) > 0;
}

// The float attributes a dropout-like module keeps its probability in.
bool deterministicInTraining(const jit::Module& module) {
  for (const char* name : {"p", "dropout", "drop_prob", "drop_rate"}) {
    if (module.hasattr(name) && module.attr(name).isDouble() && module.attr(name).toDouble() != 0)
      return false;
  }
  return true;
}

// The submodule at a dotted path ("layer1.0"; "" for the model itself).
jit::Module moduleAt(const jit::Module& model, const std::string& path) {
  jit::Module owner = model;
  std::stringstream parts(path);
  for (std::string part; std::getline(parts, part, '.');) owner = owner.attr(part).toModule();
  return owner;
}

// Every value the node (and the blocks inside it) reads.
void readsOf(jit::Node* node, std::vector<jit::Value*>& reads) {
  for (jit::Value* input : node->inputs()) reads.push_back(input);
  for (jit::Block* block : node->blocks()) {
    for (jit::Node* inner : block->nodes()) readsOf(inner, reads);
    for (jit::Value* output : block->outputs()) reads.push_back(output);
  }
}

// Classifies a forward graph's values as trainable (they read a trainable parameter, or depend
// on one that does) or frozen, and records what would make the frozen part differ between epochs.
class Splitter {
 public:
  Splitter(const jit::Module& model, const std::set<std::string>& trainable,
           const std::set<std::string>& trainMode)
      : m_model(model), m_trainable(trainable), m_trainMode(trainMode) {}

  // Walks the graph's top-level nodes in order; "" or why the frozen part cannot be cached.
  std::string classify(jit::Graph& graph) {
    m_path[graph.inputs()[0]] = "";
    m_recomputable.insert(graph.inputs()[0]);
    for (jit::Node* node : graph.nodes()) {
      if (auto problem = classifyNode(node); !problem.empty()) return problem;
    }
    return {};
  }

  bool trainable(jit::Value* value) const { return m_trainableValues.count(value) > 0; }
  bool trainable(jit::Node* node) const { return m_trainableNodes.count(node) > 0; }
  // Values that need no caching: the model and its submodules, their attributes, constants, and
  // what small non-tensor values (a list of strides, an int) are computed from those alone.
  bool recomputable(jit::Value* value) const { return m_recomputable.count(value) > 0; }

 private:
  std::string classifyNode(jit::Node* node) {
    if (node->kind() == c10::prim::GetAttr) {
      m_recomputable.insert(node->output());
      return classifyAttribute(node);
    }
    if (node->blocks().empty() && !node->outputs().empty()) {
      bool cheap = true;
      for (jit::Value* input : node->inputs()) cheap &= m_recomputable.count(input) > 0;
      for (jit::Value* output : node->outputs())
        cheap &= output->type()->kind() != c10::TypeKind::TensorType;
      if (cheap) m_recomputable.insert(node->outputs().begin(), node->outputs().end());
    }
    bool reachesTrainable = false;
    std::vector<jit::Value*> reads;
    readsOf(node, reads);
    for (jit::Value* value : reads) reachesTrainable |= m_trainableValues.count(value) > 0;
    // Blocks inside (if / loop) and calls left uninlined: whatever they read decides.
    for (jit::Block* block : node->blocks()) {
      for (jit::Node* inner : block->nodes()) {
        if (auto problem = classifyNode(inner); !problem.empty()) return problem;
        reachesTrainable |= m_trainableNodes.count(inner) > 0;
      }
    }
    for (jit::Value* input : node->inputs())
      reachesTrainable |= isModule(input) && node->kind() != c10::prim::GetAttr;
    if (reachesTrainable) {
      m_trainableNodes.insert(node);
      for (jit::Value* output : node->outputs()) m_trainableValues.insert(output);
      return {};
    }
    if (isRandom(node))
      return "the frozen part draws random numbers (" + std::string(node->kind().toQualString()) +
             ")";
    return {};
  }

  std::string classifyAttribute(jit::Node* node) {
    jit::Value* owner = node->input(0);
    const auto path = m_path.find(owner);
    if (path == m_path.end()) {  // an attribute of something computed: follows its input
      if (m_trainableValues.count(owner)) {
        m_trainableNodes.insert(node);
        m_trainableValues.insert(node->output());
      }
      return {};
    }
    const std::string name = node->s(c10::attr::name);
    const std::string full = path->second.empty() ? name : path->second + "." + name;
    if (isModule(node->output())) {
      m_path[node->output()] = full;
      return {};
    }
    if (m_trainable.count(full)) {
      m_trainableNodes.insert(node);
      m_trainableValues.insert(node->output());
      return {};
    }
    // Whether a layer in training mode is training: what depends on it changes every step
    // (dropout draws anew, a BatchNorm in train mode counts its batches), so it is computed with
    // the trainable part. Dropout with p = 0 acts the same either way.
    if (name == "training" && m_trainMode.count(path->second)) {
      const jit::Module owner = moduleAt(m_model, path->second);
      if (!deterministicInTraining(owner) || owner.hasattr("running_mean")) {
        m_trainableNodes.insert(node);
        m_trainableValues.insert(node->output());
        const std::string type = owner.type()->name() ? owner.type()->name()->name() : "module";
        if (m_live.empty()) m_live = path->second + " (" + type + ")";
      }
    }
    return {};
  }

 public:
  // The first layer in training mode whose computation changes between steps, or "".
  const std::string& firstLiveLayer() const { return m_live; }

 private:
  const jit::Module& m_model;
  const std::set<std::string>& m_trainable;
  const std::set<std::string>& m_trainMode;
  std::unordered_map<jit::Value*, std::string> m_path;  // module-typed values: their dotted path
  std::unordered_set<jit::Value*> m_trainableValues;
  std::unordered_set<jit::Node*> m_trainableNodes;
  std::string m_live;
  std::unordered_set<jit::Value*> m_recomputable;
};

// Copies the nodes `keep` says of `from` into a new graph whose inputs are `inputs` (values of
// `from` mapped to new inputs of the same type) and whose outputs are `outputs`.
std::shared_ptr<jit::Graph> extract(jit::Graph& from, const std::vector<jit::Value*>& inputs,
                                    const std::vector<jit::Value*>& outputs,
                                    const std::function<bool(jit::Node*)>& keep, bool tupleOut) {
  auto graph = std::make_shared<jit::Graph>();
  std::unordered_map<jit::Value*, jit::Value*> map;
  for (jit::Value* input : inputs) {
    jit::Value* added = graph->addInput();
    added->setType(input->type());
    map[input] = added;
  }
  for (jit::Node* node : from.nodes()) {
    if (!keep(node)) continue;
    jit::Node* copy = graph->createClone(node, [&](jit::Value* value) {
      const auto found = map.find(value);
      if (found == map.end()) {
        throw std::runtime_error("the frozen part's split lost %" + value->debugName() + " (" +
                                 node->kind().toQualString() + ")");
      }
      return found->second;
    });
    graph->appendNode(copy);
    for (std::size_t i = 0; i < node->outputs().size(); ++i)
      map[node->outputs()[i]] = copy->outputs()[i];
  }
  std::vector<jit::Value*> mapped;
  for (jit::Value* output : outputs) mapped.push_back(map.at(output));
  if (tupleOut) {
    graph->registerOutput(graph->insertNode(graph->createTuple(mapped))->output());
  } else {
    for (jit::Value* output : mapped) graph->registerOutput(output);
  }
  jit::EliminateDeadCode(graph);
  return graph;
}

}  // namespace

struct FrozenPart::Impl {
  jit::Module model;
  std::unique_ptr<jit::GraphFunction> prefix, suffix;
  // How the prefix computes the frontier, as text, and the attributes that computation reads
  // (dotted paths from the model).
  std::string signature;
  std::vector<std::string> reads;
};

namespace {

// The top-level nodes of `graph` that its outputs depend on, in order: checks left in front that
// compute nothing the outputs read (an assertion on a later layer's input, a frozen BatchNorm's
// batch counter when not training) are not among them.
std::vector<jit::Node*> computationOf(jit::Graph& graph) {
  std::unordered_set<jit::Value*> needed(graph.outputs().begin(), graph.outputs().end());
  std::vector<jit::Node*> nodes;
  for (jit::Node* node : graph.nodes().reverse()) {
    bool used = false;
    for (jit::Value* output : node->outputs()) used |= needed.count(output) > 0;
    if (!used) continue;
    nodes.push_back(node);
    std::vector<jit::Value*> reads;
    readsOf(node, reads);
    needed.insert(reads.begin(), reads.end());
  }
  std::reverse(nodes.begin(), nodes.end());
  return nodes;
}

// The dotted paths of the non-module attributes `nodes` read from `model` (a graph's first
// input), directly or through submodules, in the order they first read them.
std::vector<std::string> attributesReadBy(const std::vector<jit::Node*>& nodes, jit::Value* model) {
  std::unordered_map<jit::Value*, std::string> path{{model, ""}};
  std::vector<std::string> reads;
  std::function<void(jit::Node*)> visit = [&](jit::Node* node) {
    for (jit::Block* block : node->blocks()) {
      for (jit::Node* inner : block->nodes()) visit(inner);
    }
    if (node->kind() != c10::prim::GetAttr || !path.count(node->input(0))) return;
    const std::string& owner = path.at(node->input(0));
    const std::string name = node->s(c10::attr::name);
    const std::string full = owner.empty() ? name : owner + "." + name;
    if (isModule(node->output())) {
      path[node->output()] = full;
    } else if (std::find(reads.begin(), reads.end(), full) == reads.end()) {
      reads.push_back(full);
    }
  };
  for (jit::Node* node : nodes) visit(node);
  return reads;
}

// How `prefix` computes its outputs, as text whose values are named by the order they appear
// in (two prefixes that compute their outputs alike give the same text, whatever else each
// holds), and the attributes that computation reads.
std::string signatureOf(jit::Graph& prefix, std::vector<std::string>& reads) {
  const auto graph = prefix.copy();
  const auto nodes = computationOf(*graph);
  reads = attributesReadBy(nodes, graph->inputs()[0]);
  std::size_t count = 0;
  const auto rename = [&](jit::Value* value) {
    value->setDebugName("v" + std::to_string(count++));
  };
  std::function<void(jit::Node*)> renameNode = [&](jit::Node* node) {
    for (jit::Block* block : node->blocks()) {
      for (jit::Value* input : block->inputs()) rename(input);
      for (jit::Node* inner : block->nodes()) renameNode(inner);
    }
    for (jit::Value* output : node->outputs()) rename(output);
  };
  for (jit::Value* input : graph->inputs()) rename(input);
  for (jit::Node* node : nodes) renameNode(node);
  std::ostringstream text;
  for (jit::Node* node : nodes) text << *node;
  for (jit::Value* output : graph->outputs()) text << "return %" << output->debugName() << '\n';
  return text.str();
}

}  // namespace

FrozenPart::~FrozenPart() = default;

std::unique_ptr<FrozenPart> FrozenPart::split(const jit::Module& model,
                                              const std::set<std::string>& trainable,
                                              const std::set<std::string>& trainMode,
                                              std::string& why) {
  const auto forward = model.find_method("forward");
  if (!forward) {
    why = "the model has no forward method";
    return nullptr;
  }
  auto graph = forward->graph()->copy();
  jit::Inline(*graph);
  if (graph->inputs().size() != 2 || graph->outputs().size() != 1) {
    why = "forward does not take one input and return one value";
    return nullptr;
  }
  Splitter splitter(model, trainable, trainMode);
  why = splitter.classify(*graph);
  if (!why.empty()) return nullptr;
  jit::Value* self = graph->inputs()[0];
  jit::Value* input = graph->inputs()[1];
  // The frontier: frozen values computed from the input that trainable computation reads.
  std::vector<jit::Value*> frontier;
  std::unordered_set<jit::Value*> seen;
  const auto need = [&](jit::Value* value) {
    if (splitter.trainable(value) || splitter.recomputable(value) || !seen.insert(value).second)
      return;
    frontier.push_back(value);
  };
  for (jit::Node* node : graph->nodes()) {
    if (!splitter.trainable(node)) continue;
    std::function<void(jit::Node*)> reads = [&](jit::Node* n) {
      for (jit::Value* value : n->inputs()) need(value);
      for (jit::Block* block : n->blocks()) {
        for (jit::Node* inner : block->nodes()) reads(inner);
        for (jit::Value* value : block->outputs()) need(value);
      }
    };
    reads(node);
  }
  for (jit::Value* output : graph->outputs()) need(output);
  // Values made inside a trainable block are its own; only top-level ones can be cached.
  frontier.erase(std::remove_if(frontier.begin(), frontier.end(),
                                [&](jit::Value* value) {
                                  return value->node()->owningBlock() != graph->block() &&
                                         value != input;
                                }),
                 frontier.end());
  if (frontier.empty() || (frontier.size() == 1 && frontier.front() == input)) {
    why = splitter.firstLiveLayer().empty()
              ? "nothing frozen comes before the first trainable layer"
              : "the first layers compute something new every step: " + splitter.firstLiveLayer() +
                    " acts differently while training";
    return nullptr;
  }
  for (jit::Value* value : frontier) {
    if (value->type()->kind() != c10::TypeKind::TensorType) {
      why = "the frozen part passes a " + value->type()->repr_str() +
            " on to the trainable one (a size, say), not only tensors";
      return nullptr;
    }
  }
  auto part = std::unique_ptr<FrozenPart>(new FrozenPart());
  part->m_impl = std::make_unique<Impl>();
  part->m_impl->model = model;
  part->m_frontier = frontier.size();
  const auto prefixGraph = extract(
      *graph, {self, input}, frontier, [&](jit::Node* node) { return !splitter.trainable(node); },
      true);
  std::vector<jit::Value*> suffixInputs{self};
  suffixInputs.insert(suffixInputs.end(), frontier.begin(), frontier.end());
  const std::unordered_set<jit::Value*> cached(frontier.begin(), frontier.end());
  const auto suffixGraph = extract(
      *graph, suffixInputs, {graph->outputs()[0]},
      [&](jit::Node* node) {
        if (splitter.trainable(node)) return true;
        // Recomputed rather than cached: submodules, attributes, constants, small values made from
        // them. Nothing else frozen: a frozen node with no outputs (a check, a counter) stays in
        // front.
        if (node->outputs().empty()) return false;
        for (jit::Value* output : node->outputs()) {
          if (cached.count(output) || !splitter.recomputable(output)) return false;
        }
        return true;
      },
      false);
  part->m_impl->signature = signatureOf(*prefixGraph, part->m_impl->reads);
  part->m_impl->prefix = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName("scalpel.frozen_prefix"), prefixGraph, nullptr);
  part->m_impl->suffix = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName("scalpel.trainable_suffix"), suffixGraph, nullptr);
  // The model's children the prefix computes whole: those in front of the first one the suffix
  // reads anything of (a parameter, a buffer, whether it is training).
  std::unordered_map<jit::Value*, std::string> path{{suffixGraph->inputs()[0], ""}};
  std::set<std::string> inSuffix;
  for (jit::Node* node : suffixGraph->nodes()) {
    if (node->kind() != c10::prim::GetAttr || !path.count(node->input(0))) continue;
    const std::string owner = path.at(node->input(0));
    const std::string full =
        owner.empty() ? node->s(c10::attr::name) : owner + "." + node->s(c10::attr::name);
    if (isModule(node->output())) path[node->output()] = full;
    inSuffix.insert(full.substr(0, full.find('.')));
  }
  for (const auto& item : model.named_children()) {
    if (inSuffix.count(item.name)) break;
    part->m_modules.push_back(item.name);
  }
  return part;
}

std::vector<torch::Tensor> FrozenPart::prefix(const torch::Tensor& inputs) const {
  jit::Stack stack{c10::IValue(m_impl->model._ivalue()), c10::IValue(inputs)};
  m_impl->prefix->run(stack);
  std::vector<torch::Tensor> frontier;
  for (const auto& value : stack.back().toTuple()->elements()) frontier.push_back(value.toTensor());
  return frontier;
}

torch::jit::IValue FrozenPart::suffix(const std::vector<torch::Tensor>& frontier) const {
  jit::Stack stack{c10::IValue(m_impl->model._ivalue())};
  for (const auto& value : frontier) stack.emplace_back(value);
  m_impl->suffix->run(stack);
  return stack.back();
}

std::string FrozenPart::signature() const { return m_impl->signature; }

std::vector<std::pair<std::string, c10::IValue>> FrozenPart::attributesRead() const {
  std::vector<std::pair<std::string, c10::IValue>> values;
  for (const auto& full : m_impl->reads) {
    const auto dot = full.rfind('.');
    const jit::Module owner =
        moduleAt(m_impl->model, dot == std::string::npos ? "" : full.substr(0, dot));
    values.emplace_back(full, owner.attr(dot == std::string::npos ? full : full.substr(dot + 1)));
  }
  return values;
}

std::string FrozenPart::describe() const {
  if (m_modules.empty()) return "the layers before the first trainable one";
  if (m_modules.size() == 1) return m_modules.front();
  return m_modules.front() + " … " + m_modules.back();
}

}  // namespace scalpel
