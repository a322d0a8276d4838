#pragma once

// A tolerant reader for the pickle that torch.save stores as data.pkl in its zip archive.
// LibTorch's own unpickler (torch::pickle_load) only knows TorchScript's restricted subset: it
// returns None for an OrderedDict state dict and fails on Lightning checkpoints, whose
// hyper-parameters are arbitrary Python objects. This one turns everything into plain values,
// keeping unknown classes as Global/Object values instead of refusing them, and never runs code.
// Torch-free, so it is testable and fuzzable without LibTorch.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace scalpel {

// What torch.save's data.pkl holds, as plain values.
struct PickleValue;
using PickleValuePtr = std::shared_ptr<const PickleValue>;

// A tensor rebuilt by torch._utils._rebuild_tensor_v2 / _rebuild_parameter. Its data is the
// archive's record data/<storageKey>; the reader has checked that shape/stride/offset stay inside
// the storage's storageNumel elements.
struct PickleTensor {
  std::string storageKey;  // the archive's data/<key>
  // From the storage class: "Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char",
  // "Byte", "Bool"; other torch.XStorage classes give "X" (e.g. "ComplexFloat", "QInt8") for the
  // caller to refuse.
  std::string dtype;
  std::int64_t storageNumel = 0;  // elements in the storage (from the persistent id)
  std::int64_t storageOffset = 0;
  std::vector<std::int64_t> shape, stride;
  bool requiresGrad = false;
};

struct PickleValue {
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    String,
    Bytes,
    List,
    Tuple,
    Dict,
    Tensor,
    Global,
    Object
  };
  Kind kind = Kind::None;
  bool boolean = false;
  std::int64_t integer = 0;  // Int; integers beyond 64 bits become Float (approximately)
  double real = 0;
  // String (UTF-8 as pickled), Bytes; Global: "module.qualname"; Object: its class's
  // "module.qualname". Python 2 names torch's protocol 2 uses ("__builtin__") read as Python 3's.
  std::string text;
  // List, Tuple (sets and frozensets read as List, torch.Size as Tuple); Object: constructor
  // arguments, then what APPEND/ADDITEMS added (a list subclass).
  std::vector<PickleValuePtr> items;
  // Dict in insertion order (dict, collections.OrderedDict, collections.defaultdict); Object: what
  // SETITEM(S) added (a dict subclass such as Lightning's AttributeDict).
  std::vector<std::pair<PickleValuePtr, PickleValuePtr>> entries;
  PickleTensor tensor;
  // Object: what BUILD gave it (usually its __dict__ as a Dict). Dict: what BUILD gave it, which
  // for a state dict is {"_metadata": OrderedDict of per-module {"version": N}}; readers of the
  // entries can ignore it.
  PickleValuePtr state;

  // The value for a String key of a Dict (or of an Object's entries), else nullptr.
  const PickleValue* find(const std::string& key) const;
};

class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a pickle as torch.save writes data.pkl (protocols 0-5). Unknown globals become Global
// values and REDUCE/NEWOBJ on them give Object values (so a Lightning checkpoint's
// hyper-parameter objects or an argparse.Namespace do not stop the read); BUILD on an Object
// stores its state. Persistent ids ('storage', torch.FloatStorage, key, location, numel) become
// storages that _rebuild_tensor_v2 turns into Tensor values (a bare storage, torch.save(storage),
// reads as an Object of class "torch.storage.TypedStorage" whose `tensor` describes all of it).
// Values may be shared (memoized objects, small integers): compare by content, not address.
//
// Hostile input is refused, never crashes: every read is bounds-checked, the stack, the memo, the
// number of values and their nesting (kMaxPickleDepth) are capped, and reference cycles (which
// only hand-made pickles have) are cut by replacing the edge that closes the cycle with None, so
// the result is a DAG that can be walked recursively without looping. Throws PickleError saying
// what is wrong (truncated, unknown opcode 0xNN at offset K, too deep, ...).
PickleValuePtr parsePickle(const std::string& bytes);

// How deep parsePickle lets values nest (a torch.save of a whole model nests a few dozen levels).
constexpr int kMaxPickleDepth = 1000;

}  // namespace scalpel
