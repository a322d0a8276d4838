#include "checkpoint/pickle_writer.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace scalpel {

namespace {

const char* storageClass(const std::string& dtype) {
  static const std::map<std::string, const char*> kClasses = {
      {"Float", "FloatStorage"},   {"Half", "HalfStorage"}, {"BFloat16", "BFloat16Storage"},
      {"Double", "DoubleStorage"}, {"Long", "LongStorage"}, {"Int", "IntStorage"},
      {"Short", "ShortStorage"},   {"Char", "CharStorage"}, {"Byte", "ByteStorage"},
      {"Bool", "BoolStorage"}};
  const auto found = kClasses.find(dtype);
  return found == kClasses.end() ? nullptr : found->second;
}

class PickleWriter {
 public:
  std::string take() { return std::move(m_out); }

  void op(char code) { m_out += code; }

  void little(std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) m_out += static_cast<char>((value >> (8 * i)) & 0xff);
  }

  // The smallest of BININT1/BININT2/BININT/LONG1, as pickle itself chooses.
  void integer(std::int64_t value) {
    if (value >= 0 && value <= 0xff) {
      op('K');
      little(static_cast<std::uint64_t>(value), 1);
    } else if (value >= 0 && value <= 0xffff) {
      op('M');
      little(static_cast<std::uint64_t>(value), 2);
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
      op('J');
      little(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)), 4);
    } else {
      // LONG1: little-endian two's complement, as short as keeps the sign.
      std::string bytes;
      auto bits = static_cast<std::uint64_t>(value);
      for (int i = 0; i < 8; ++i) bytes += static_cast<char>((bits >> (8 * i)) & 0xff);
      const char fill = value < 0 ? '\xff' : '\0';
      while (bytes.size() > 1 && bytes.back() == fill &&
             ((static_cast<unsigned char>(bytes[bytes.size() - 2]) & 0x80) != 0) == (value < 0)) {
        bytes.pop_back();
      }
      op('\x8a');
      little(bytes.size(), 1);
      m_out += bytes;
    }
  }

  // BINUNICODE (not SHORT_BINUNICODE: torch 1.13's weights_only unpickler lacks it).
  void text(const std::string& value) {
    op('X');
    little(value.size(), 4);
    m_out += value;
  }

  // A global, memoized on first use so that repeats are a two-byte BINGET. Memo indices stay
  // below 256 (a handful of globals and strings), so BINPUT/BINGET always suffice.
  void global(const std::string& module, const std::string& name) {
    memoized(module + "\n" + name + "\n", true);
  }
  void memoText(const std::string& value) { memoized(value, false); }

  void sizes(const std::vector<std::int64_t>& values) {
    switch (values.size()) {
      case 0:
        op(')');
        break;
      case 1:
        integer(values[0]);
        op('\x85');
        break;
      case 2:
        integer(values[0]);
        integer(values[1]);
        op('\x86');
        break;
      case 3:
        integer(values[0]);
        integer(values[1]);
        integer(values[2]);
        op('\x87');
        break;
      default:
        op('(');
        for (auto v : values) integer(v);
        op('t');
    }
  }

 private:
  void memoized(const std::string& key, bool isGlobal) {
    const std::string id = (isGlobal ? "g" : "s") + key;
    const auto found = m_memo.find(id);
    if (found != m_memo.end()) {
      op('h');
      little(found->second, 1);
      return;
    }
    if (isGlobal) {
      op('c');
      m_out += key;
    } else {
      text(key);
    }
    const std::size_t index = m_memo.size();
    if (index > 0xff) throw std::logic_error("pickle writer memo overflow");
    m_memo.emplace(id, index);
    op('q');
    little(index, 1);
  }

  std::string m_out;
  std::map<std::string, std::size_t> m_memo;
};

}  // namespace

std::string writeStateDictPickle(const std::vector<StateDictEntry>& entries) {
  PickleWriter w;
  w.op('\x80');
  w.little(2, 1);
  w.global("collections", "OrderedDict");
  w.op(')');
  w.op('R');
  // pickle batches SETITEMS by 1000 to bound the unpickler's stack; do the same.
  constexpr std::size_t kBatch = 1000;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const StateDictEntry& entry = entries[i];
    const char* storage = storageClass(entry.dtype);
    if (!storage) {
      throw std::invalid_argument("torch has no storage class for dtype '" + entry.dtype + "'");
    }
    // Contiguous strides as torch computes them: a size-0 dimension counts as 1.
    std::vector<std::int64_t> stride(entry.shape.size(), 1);
    std::int64_t numel = 1;
    bool overflow = false;
    for (std::size_t d = entry.shape.size(); d-- > 0;) {
      if (entry.shape[d] < 0) {
        throw std::invalid_argument("tensor '" + entry.name + "' has a negative size");
      }
      if (d + 1 < entry.shape.size()) {
        overflow |= __builtin_mul_overflow(
            stride[d + 1], std::max<std::int64_t>(entry.shape[d + 1], 1), &stride[d]);
      }
      overflow |= __builtin_mul_overflow(numel, entry.shape[d], &numel);
    }
    if (overflow) throw std::invalid_argument("tensor '" + entry.name + "' is too large");
    if (numel > entry.numel) {
      throw std::invalid_argument("tensor '" + entry.name + "' has " + std::to_string(numel) +
                                  " elements but its storage only " + std::to_string(entry.numel));
    }
    if (i % kBatch == 0) w.op('(');
    w.text(entry.name);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op('(');
    w.op('(');
    w.memoText("storage");
    w.global("torch", storage);
    w.text(entry.storageKey);
    w.memoText("cpu");
    w.integer(entry.numel);
    w.op('t');
    w.op('Q');  // BINPERSID: torch.load's persistent_load maps the tuple to the storage
    w.integer(0);
    w.sizes(entry.shape);
    w.sizes(stride);
    w.op('\x89');                            // requires_grad=False
    w.global("collections", "OrderedDict");  // backward_hooks
    w.op(')');
    w.op('R');
    w.op('t');
    w.op('R');
    if (i % kBatch == kBatch - 1 || i + 1 == entries.size()) w.op('u');
  }
  w.op('.');
  return w.take();
}

}  // namespace scalpel
