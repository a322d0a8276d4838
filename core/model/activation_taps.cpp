#include "model/activation_taps.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "model/channel_sums.h"

namespace scalpel {

namespace jit = torch::jit;
using ObjectPtr = c10::intrusive_ptr<c10::ivalue::Object>;

std::string ModuleCall::label() const {
  return call == 0 ? module : module + "#" + std::to_string(call);
}

namespace {

bool isTensor(const c10::TypePtr& type) { return type->kind() == c10::TypeKind::TensorType; }

// Rewrites a copy of forward. Lives only while the constructor of ActivationTaps runs.
class GraphRewriter {
 public:
  GraphRewriter(const jit::Module& model, std::shared_ptr<jit::Graph> graph,
                std::set<std::string> inputsOf)
      : m_graph(std::move(graph)),
        m_self(m_graph->inputs().at(0)),
        m_root(model._ivalue()),
        m_inputsOf(std::move(inputsOf)) {}

  // Inlines every method call and puts a marker where each module call returns.
  void inlineAll() { inlineBlock(m_graph->block()); }

  // Folds branches on constant module attributes until nothing changes, and drops the calls that
  // sat in branches never taken.
  void foldAll() {
    while (foldBlock(m_graph->block())) {
    }
  }

  // Numbers the calls that survived folding, keeps the clones of the selected tappable ones, and
  // makes the graph return (original output, those clones...).
  void finish(const std::set<std::string>& only, std::vector<ModuleCall>& calls,
              std::vector<ModuleCall>& tapped, std::vector<ModuleCall>& inputTapped,
              bool channelSums) {
    std::map<std::string, int> seen;
    std::vector<jit::Value*> outputs{m_graph->outputs().at(0)};
    std::vector<jit::Value*> inputs;
    std::set<jit::Node*> kept, unwanted;
    for (auto& pending : m_pending) {
      if (pending.dead) continue;
      ModuleCall call = pending.call;
      call.call = seen[call.module]++;
      if (call.tappable && pending.marker->owningBlock() != m_graph->block()) {
        call.tappable = false;
        call.whyNot = "called inside a loop or a branch that depends on the data";
      }
      const bool wanted = call.tappable && (only.empty() || only.count(call.module));
      if (wanted) {
        outputs.push_back(pending.marker->output());
        tapped.push_back(call);
        kept.insert(pending.marker);
      } else {
        unwanted.insert(pending.marker);
      }
      if (pending.inputMarker && pending.inputMarker->owningBlock() == m_graph->block()) {
        inputs.push_back(pending.inputMarker->output());
        inputTapped.push_back(call);
      }
      calls.push_back(std::move(call));
    }
    for (jit::Node* marker : unwanted) {
      // An unused clone would cost a copy of the activation.
      if (!kept.count(marker) && !marker->output()->hasUses()) marker->destroy();
    }
    outputs.insert(outputs.end(), inputs.begin(), inputs.end());
    if (channelSums) reduceAtMarkers(outputs);
    jit::WithInsertPoint guard(m_graph->block()->return_node());
    jit::Value* tuple = m_graph->insertNode(m_graph->createTuple(outputs))->output();
    m_graph->eraseOutput(0);
    m_graph->registerOutput(tuple);
    dropNeedlessClones();
  }

  // Output::ChannelSums: each tap's clone becomes a scalpel::channel_sums call on the value it
  // copied, at the same place (so before any later in-place op); the tap returns the sums.
  void reduceAtMarkers(std::vector<jit::Value*>& outputs) {
    std::unordered_map<jit::Value*, jit::Node*> reductionOf;  // tapped value → its latest reduction
    std::set<jit::Node*> markers;
    for (std::size_t i = 1; i < outputs.size(); ++i) {
      jit::Node* marker = outputs[i]->node();
      markers.insert(marker);
      jit::Value* source = m_clones.count(marker) ? marker->input(0) : outputs[i];
      auto it = reductionOf.find(source);
      // The same values with nothing run in between (a block, its last child, an Identity after
      // it, each with a tap of its own) share one reduction.
      if (it == reductionOf.end() || !onlyTapsBetween(it->second, marker)) {
        jit::WithInsertPoint guard(marker);
        it = reductionOf
                 .insert_or_assign(source, m_graph->insert(channelSumsOperator(), {source})->node())
                 .first;
      }
      outputs[i] = it->second->output();
    }
    for (jit::Node* marker : markers) {
      if (m_clones.count(marker) && !marker->output()->hasUses()) {
        m_clones.erase(marker);
        marker->destroy();
      }
    }
    deriveBatchNormOutputs(outputs, reductionOf);
  }

  // A BatchNorm's output whose input is reduced too (and nothing writes to that input): its sums
  // come from the input's (scalpel::batch_norm_output_sums), so the output is never read. The
  // demo's nine BatchNorms then cost no pass over their activations at all.
  void deriveBatchNormOutputs(std::vector<jit::Value*>& outputs,
                              const std::unordered_map<jit::Value*, jit::Node*>& reductionOf) {
    const jit::AliasDb aliases(m_graph, /*isFrozen=*/false, /*descendFunctionCalls=*/true);
    std::vector<std::pair<jit::Node*, std::vector<jit::Value*>>>
        derivable;  // reduction, its arguments
    for (const auto& [value, reduction] : reductionOf) {
      auto arguments = batchNormArguments(value);
      if (arguments.empty()) continue;
      const auto input = reductionOf.find(arguments[0]);
      if (input == reductionOf.end() || !input->second->isBefore(reduction) ||
          aliases.hasWriters(arguments[0]))
        continue;
      arguments[0] = input->second->output();
      derivable.emplace_back(reduction, std::move(arguments));
    }
    for (auto& [reduction, arguments] : derivable) {
      // (output, input_sums, running_mean, running_var, weight, bias, training, eps)
      jit::WithInsertPoint guard(reduction);
      std::vector<jit::NamedValue> inputs{reduction->input()};
      for (std::size_t k : {0, 1, 2, 3, 4, 5, 7}) inputs.emplace_back(arguments[k]);
      jit::Value* derived = m_graph->insert(batchNormOutputSumsOperator(), inputs);
      std::replace(outputs.begin(), outputs.end(), reduction->output(), derived);
      reduction->output()->replaceAllUsesWith(derived);
      reduction->destroy();
    }
  }

  // F.batch_norm's arguments (input, running_mean, running_var, weight, bias, training, momentum,
  // eps) when `value` is what it returned (or aten::batch_norm, which orders them differently);
  // else none.
  static std::vector<jit::Value*> batchNormArguments(jit::Value* value) {
    jit::Node* node = value->node();
    const auto in = node->inputs();
    if (node->kind() == c10::aten::batch_norm && in.size() >= 8) {
      return {in[0], in[3], in[4], in[1], in[2], in[5], in[6], in[7]};
    }
    if (node->kind() != c10::prim::CallFunction || in.size() != 9) return {};
    const auto function = in[0]->type()->cast<c10::FunctionType>();
    if (!function || function->function()->qualname().qualifiedName() !=
                         "__torch__.torch.nn.functional.batch_norm") {
      return {};
    }
    return {in.begin() + 1, in.end()};
  }

  // Whether nothing but taps (markers, clones, reductions) and nodes that only name things
  // (constants, attributes, lists) lies between two nodes of the top block: then no tensor can
  // change between them.
  bool onlyTapsBetween(jit::Node* a, jit::Node* b) const {
    if (b->isBefore(a)) std::swap(a, b);
    for (jit::Node* node = a->next(); node != b; node = node->next()) {
      const auto kind = node->kind();
      const bool names = kind == c10::prim::Constant || kind == c10::prim::GetAttr ||
                         kind == c10::prim::ListConstruct;
      if (!names && kind != channelSumsOperator() && !m_markers.count(node) &&
          !m_clones.count(node))
        return false;
    }
    return true;
  }

  // A clone keeps a tapped value from later in-place ops (ReLU(inplace=True), `out += x`). Where
  // nothing in the graph writes to the value or to anything aliasing it (a BatchNorm's input, a
  // convolution's output) the value itself is returned: copying it would cost time for nothing.
  void dropNeedlessClones() {
    // Descending into function calls (F.batch_norm, F.relu): analysed as opaque calls, every
    // tensor they are given would count as written.
    const jit::AliasDb aliases(m_graph, /*isFrozen=*/false, /*descendFunctionCalls=*/true);
    std::vector<jit::Node*> needless;
    for (jit::Node* node : m_graph->block()->nodes()) {
      if (node->kind() == c10::aten::clone && m_clones.count(node) &&
          !aliases.hasWriters(node->inputs()[0]))
        needless.push_back(node);
    }
    for (jit::Node* clone : needless) {
      clone->output()->replaceAllUsesWith(clone->inputs()[0]);
      clone->destroy();
    }
  }

 private:
  struct Resolved {
    std::string path;  // "" for the model itself
    ObjectPtr object;
  };
  struct Pending {
    ModuleCall call;
    jit::Node* marker = nullptr;       // the clone of the tapped value, or a constant placeholder
    jit::Node* inputMarker = nullptr;  // the clone of the call's first input, when asked for
    bool dead = false;                 // sat in a branch that is never taken
  };

  // Module-typed values are the model (graph input 0) or GetAttr chains from it.
  std::optional<Resolved> resolve(jit::Value* value) {
    if (value == m_self) return Resolved{"", m_root};
    if (auto it = m_modules.find(value); it != m_modules.end()) return it->second;
    jit::Node* node = value->node();
    if (node->kind() != c10::prim::GetAttr) return std::nullopt;
    auto parent = resolve(node->input());
    if (!parent) return std::nullopt;
    const std::string& name = node->s(c10::attr::name);
    const auto slot = parent->object->type()->findAttributeSlot(name);
    if (!slot) return std::nullopt;
    const c10::IValue attribute = parent->object->getSlot(*slot);
    if (!attribute.isObject()) return std::nullopt;
    Resolved found{parent->path.empty() ? name : parent->path + "." + name, attribute.toObject()};
    m_modules.emplace(value, found);
    return found;
  }

  void inlineBlock(jit::Block* block) {
    for (jit::Node* node = block->nodes().front(); node != block->return_node();) {
      if (node->kind() == c10::prim::CallMethod) {
        node = inlineCall(node);
        continue;
      }
      for (jit::Block* sub : node->blocks()) inlineBlock(sub);
      node = node->next();
    }
  }

  // Returns the node to continue with: the first inlined one, so nested calls follow in order.
  jit::Node* inlineCall(jit::Node* callNode) {
    const auto selfType = callNode->input(0)->type()->cast<c10::ClassType>();
    const std::string method = callNode->s(c10::attr::name);
    jit::Function* function = selfType ? selfType->findMethod(method) : nullptr;
    jit::GraphFunction* graphFunction = function ? jit::tryToGraphFunction(*function) : nullptr;
    if (!graphFunction) return callNode->next();  // an interface call: leave it alone

    const auto target = resolve(callNode->input(0));
    const bool isModuleCall = method == "forward" && target && !target->path.empty();
    jit::Node* before = callNode->prev();
    jit::Node* after = callNode->next();
    jit::Node* inputMarker = nullptr;
    if (isModuleCall && m_inputsOf.count(target->path) && callNode->inputs().size() > 1 &&
        isTensor(callNode->input(1)->type())) {
      // Cloned where the call starts: later in-place ops may change the value.
      jit::WithInsertPoint guard(callNode);
      inputMarker = m_graph->insert(c10::aten::clone, {callNode->input(1)})->node();
      m_clones.insert(inputMarker);
      before = inputMarker;
    }
    // The callee's own graph, not its optimized one: that is already inlined and would hide the
    // nested module calls.
    const auto outputs = jit::inlineCallTo(callNode, graphFunction, graphFunction->graph().get());
    if (isModuleCall) {
      Pending pending;
      pending.call.module = target->path;
      pending.call.typeName = selfType->name() ? selfType->name()->name() : "?";
      pending.marker = markReturn(outputs, after, pending.call);
      pending.inputMarker = inputMarker;
      m_pending.push_back(std::move(pending));
    }
    return before->next();
  }

  // Clones the call's tensor output right where the call returned; for a tuple output, its
  // first element (MultiheadAttention returns (output, weights)).
  jit::Node* markReturn(const std::vector<jit::Value*>& outputs, jit::Node* after,
                        ModuleCall& call) {
    jit::WithInsertPoint guard(after);
    jit::Value* value = outputs.size() == 1 ? outputs[0] : nullptr;
    if (value && !isTensor(value->type())) {
      const auto tuple = value->type()->cast<c10::TupleType>();
      if (tuple && !tuple->elements().empty() && isTensor(tuple->elements()[0])) {
        value = m_graph
                    ->insertNode(m_graph->createTupleIndex(value, m_graph->insertConstant(0),
                                                           tuple->elements()[0]))
                    ->output();
      } else {
        call.whyNot = "returns " + value->type()->repr_str() + ", not a tensor";
        value = nullptr;
      }
    } else if (!value) {
      call.whyNot = "returns several values";
    }
    call.tappable = value != nullptr;
    jit::Node* marker = nullptr;
    if (!value) {
      marker = m_graph->insertConstant(0)->node();  // keeps the call's place in the graph
    } else if (const auto it = m_cloneOf.find(value);
               it != m_cloneOf.end() && onlyMarkersUntil(it->second, after)) {
      // A container returning its last child's output, with nothing run in between: the child's
      // clone holds the same values, so the two calls share it.
      return it->second;
    } else {
      marker = m_graph->insert(c10::aten::clone, {value})->node();
      m_cloneOf[value] = marker;
      m_clones.insert(marker);
    }
    m_markers.insert(marker);
    return marker;
  }

  bool onlyMarkersUntil(jit::Node* from, jit::Node* until) const {
    for (jit::Node* node = from->next(); node != until; node = node->next()) {
      if (node->kind() == c10::prim::Return || !m_markers.count(node)) return false;
    }
    return true;
  }

  bool foldBlock(jit::Block* block) {
    bool changed = false;
    for (auto it = block->nodes().begin(); it != block->nodes().end();) {
      jit::Node* node = *it;
      ++it;
      if (node->kind() == c10::prim::GetAttr) {
        changed |= foldAttribute(node);
      } else if (node->kind() == c10::prim::If &&
                 node->input()->node()->kind() == c10::prim::Constant) {
        foldBranch(node);
        changed = true;
      } else if (node->blocks().empty()) {
        changed |= foldConstantNode(node);
      } else {
        for (jit::Block* sub : node->blocks()) changed |= foldBlock(sub);
      }
    }
    return changed;
  }

  // A module's plain attributes (bool/int/float/str) never change during forward unless it sets
  // them; `training` must stay live so train() and eval() keep working.
  bool foldAttribute(jit::Node* node) {
    const std::string& name = node->s(c10::attr::name);
    if (name == "training" || isMutated(name)) return false;
    const auto owner = resolve(node->input());
    if (!owner) return false;
    const auto slot = owner->object->type()->findAttributeSlot(name);
    if (!slot) return false;
    const c10::IValue value = owner->object->getSlot(*slot);
    if (!(value.isBool() || value.isInt() || value.isDouble() || value.isString())) return false;
    jit::WithInsertPoint guard(node);
    const auto constant = jit::tryInsertConstant(*m_graph, value);
    if (!constant) return false;
    node->output()->replaceAllUsesWith(*constant);
    node->destroy();
    return true;
  }

  bool isMutated(const std::string& name) {
    if (!m_mutated) {
      m_mutated.emplace();
      collectSetAttr(m_graph->block());
    }
    return m_mutated->count(name) > 0;
  }
  void collectSetAttr(jit::Block* block) {
    for (jit::Node* node : block->nodes()) {
      if (node->kind() == c10::prim::SetAttr) m_mutated->insert(node->s(c10::attr::name));
      for (jit::Block* sub : node->blocks()) collectSetAttr(sub);
    }
  }

  // Evaluates small non-tensor computations on constants (e.g. `not self.flag`, `a == b`).
  bool foldConstantNode(jit::Node* node) {
    if (node->inputs().empty() || node->kind() == c10::prim::Constant || node->hasSideEffects()) {
      return false;
    }
    for (jit::Value* input : node->inputs()) {
      if (input->node()->kind() != c10::prim::Constant) return false;
    }
    for (jit::Value* output : node->outputs()) {
      const auto kind = output->type()->kind();
      if (kind != c10::TypeKind::BoolType && kind != c10::TypeKind::IntType &&
          kind != c10::TypeKind::FloatType && kind != c10::TypeKind::StringType) {
        return false;
      }
    }
    const auto values = jit::runNodeIfInputsAreConstant(node);
    if (!values || values->size() != node->outputs().size()) return false;
    jit::WithInsertPoint guard(node);
    std::vector<jit::Value*> constants;
    for (const auto& value : *values) {
      const auto constant = jit::tryInsertConstant(*m_graph, value);
      if (!constant) return false;
      constants.push_back(*constant);
    }
    for (size_t i = 0; i < constants.size(); ++i) node->output(i)->replaceAllUsesWith(constants[i]);
    node->destroy();
    return true;
  }

  void foldBranch(jit::Node* ifNode) {
    const bool condition = jit::toIValue(ifNode->input())->toBool();
    jit::Block* taken = ifNode->blocks().at(condition ? 0 : 1);
    jit::Block* dropped = ifNode->blocks().at(condition ? 1 : 0);
    markDead(dropped);
    while (taken->nodes().begin() != taken->nodes().end())
      taken->nodes().front()->moveBefore(ifNode);
    for (size_t i = 0; i < ifNode->outputs().size(); ++i) {
      ifNode->output(i)->replaceAllUsesWith(taken->outputs()[i]);
    }
    ifNode->destroy();
    m_modules.clear();  // values of the dropped branch are gone; their addresses may be reused
  }

  void markDead(jit::Block* block) {
    std::set<jit::Node*> nodes;
    std::vector<jit::Block*> stack{block};
    while (!stack.empty()) {
      jit::Block* current = stack.back();
      stack.pop_back();
      for (jit::Node* node : current->nodes()) {
        nodes.insert(node);
        for (jit::Block* sub : node->blocks()) stack.push_back(sub);
      }
    }
    for (auto& pending : m_pending) {
      if (nodes.count(pending.marker)) pending.dead = true;
    }
  }

  std::shared_ptr<jit::Graph> m_graph;
  jit::Value* m_self;
  ObjectPtr m_root;
  std::unordered_map<jit::Value*, Resolved> m_modules;
  std::optional<std::set<std::string>> m_mutated;
  std::set<std::string> m_inputsOf;
  std::vector<Pending> m_pending;
  std::unordered_map<jit::Value*, jit::Node*> m_cloneOf;  // tapped value → its clone
  std::set<jit::Node*> m_markers;
  std::set<jit::Node*> m_clones;  // the clones inserted here (the model may make its own)
};

}  // namespace

struct ActivationTaps::Impl {
  jit::Module model;
  std::shared_ptr<jit::Graph> graph;
  std::unique_ptr<jit::GraphFunction> function;
};

ActivationTaps::ActivationTaps(const jit::Module& model, const std::vector<std::string>& only,
                               const std::vector<std::string>& inputsOf, Output output)
    : m_impl(std::make_unique<Impl>()) {
  m_impl->model = model;
  const auto forward = model.find_method("forward");
  if (!forward) throw std::runtime_error("the model has no forward method");
  m_impl->graph = forward->graph()->copy();
  if (m_impl->graph->outputs().size() != 1) {
    throw std::runtime_error("forward must return one value");
  }
  GraphRewriter rewriter(model, m_impl->graph,
                         std::set<std::string>(inputsOf.begin(), inputsOf.end()));
  rewriter.inlineAll();
  rewriter.foldAll();
  rewriter.finish(std::set<std::string>(only.begin(), only.end()), m_calls, m_tapped, m_inputTapped,
                  output == Output::ChannelSums);
  m_impl->function = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName("scalpel.tapped_forward"), m_impl->graph, nullptr);
}

ActivationTaps::~ActivationTaps() = default;
ActivationTaps::ActivationTaps(ActivationTaps&&) noexcept = default;
ActivationTaps& ActivationTaps::operator=(ActivationTaps&&) noexcept = default;

ActivationTaps::Result ActivationTaps::run(const torch::Tensor& input) const {
  jit::Stack stack{c10::IValue(m_impl->model._ivalue()), c10::IValue(input)};
  m_impl->function->run(stack);
  const auto tuple = stack.back().toTuple();
  const auto& elements = tuple->elements();
  Result result;
  result.output = elements.at(0);
  const size_t taps = m_tapped.size();
  for (size_t i = 1; i < elements.size(); ++i) {
    (i <= taps ? result.taps : result.inputs).push_back(elements[i].toTensor());
  }
  return result;
}

std::string ActivationTaps::graphText() const { return m_impl->graph->toString(); }

}  // namespace scalpel
