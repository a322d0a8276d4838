#include "checkpoint/pickle_reader.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace scalpel {

const PickleValue* PickleValue::find(const std::string& key) const {
  if (kind != Kind::Dict && kind != Kind::Object) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k && k->kind == Kind::String && k->text == key) return v.get();
  }
  return nullptr;
}

namespace {

using Kind = PickleValue::Kind;
// Values under construction: lists and dicts are filled after they were pushed and memoized, so
// the parser needs them mutable; the caller only ever sees them const.
using Node = std::shared_ptr<PickleValue>;

// Caps that real checkpoints stay far below (a state dict of 100k tensors needs a few million
// values and a stack of a few thousand) but that keep a hostile file from exhausting memory.
constexpr std::size_t kMaxStack = std::size_t{1} << 22;
constexpr std::size_t kMaxMarks = std::size_t{1} << 16;
constexpr std::size_t kMaxMemo = std::size_t{1} << 23;
constexpr std::size_t kMaxValues = std::size_t{1} << 23;
// Elements put into containers in all. Without it, set(memo'd big list) repeated would copy the
// list again and again: quadratic memory from linear input.
constexpr std::size_t kMaxElements = std::size_t{1} << 25;
// Small integers (sizes, strides, offsets) are most of a state dict's values; sharing them, as
// Python does, saves an allocation each.
constexpr std::int64_t kFirstSharedInt = -16;
constexpr std::int64_t kEndSharedInt = 1024;

const char* opcodeName(unsigned char op) {
  switch (op) {
    case 0x80:
      return "PROTO";
    case 0x95:
      return "FRAME";
    case '.':
      return "STOP";
    case '(':
      return "MARK";
    case '0':
      return "POP";
    case '1':
      return "POP_MARK";
    case '2':
      return "DUP";
    case 'N':
      return "NONE";
    case 0x88:
      return "NEWTRUE";
    case 0x89:
      return "NEWFALSE";
    case 'I':
      return "INT";
    case 'J':
      return "BININT";
    case 'K':
      return "BININT1";
    case 'M':
      return "BININT2";
    case 'L':
      return "LONG";
    case 0x8a:
      return "LONG1";
    case 0x8b:
      return "LONG4";
    case 'F':
      return "FLOAT";
    case 'G':
      return "BINFLOAT";
    case 'S':
      return "STRING";
    case 'T':
      return "BINSTRING";
    case 'U':
      return "SHORT_BINSTRING";
    case 'V':
      return "UNICODE";
    case 'X':
      return "BINUNICODE";
    case 0x8c:
      return "SHORT_BINUNICODE";
    case 0x8d:
      return "BINUNICODE8";
    case 'B':
      return "BINBYTES";
    case 'C':
      return "SHORT_BINBYTES";
    case 0x8e:
      return "BINBYTES8";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    case ']':
      return "EMPTY_LIST";
    case 'a':
      return "APPEND";
    case 'e':
      return "APPENDS";
    case 'l':
      return "LIST";
    case ')':
      return "EMPTY_TUPLE";
    case 't':
      return "TUPLE";
    case 0x85:
      return "TUPLE1";
    case 0x86:
      return "TUPLE2";
    case 0x87:
      return "TUPLE3";
    case '}':
      return "EMPTY_DICT";
    case 'd':
      return "DICT";
    case 's':
      return "SETITEM";
    case 'u':
      return "SETITEMS";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 'c':
      return "GLOBAL";
    case 0x93:
      return "STACK_GLOBAL";
    case 'R':
      return "REDUCE";
    case 'b':
      return "BUILD";
    case 0x81:
      return "NEWOBJ";
    case 0x92:
      return "NEWOBJ_EX";
    case 'i':
      return "INST";
    case 'o':
      return "OBJ";
    case 'q':
      return "BINPUT";
    case 'r':
      return "LONG_BINPUT";
    case 'p':
      return "PUT";
    case 'h':
      return "BINGET";
    case 'j':
      return "LONG_BINGET";
    case 'g':
      return "GET";
    case 0x94:
      return "MEMOIZE";
    case 'Q':
      return "BINPERSID";
    case 'P':
      return "PERSID";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    default:
      return nullptr;
  }
}

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::String:
      return "a string";
    case Kind::Bytes:
      return "bytes";
    case Kind::List:
      return "a list";
    case Kind::Tuple:
      return "a tuple";
    case Kind::Dict:
      return "a dict";
    case Kind::Tensor:
      return "a tensor";
    case Kind::Global:
      return "a class or function";
    case Kind::Object:
      return "an object";
  }
  return "a value";
}

// A hostile file's names can be megabytes long; messages quote only their start.
std::string excerpt(const std::string& text) {
  constexpr std::size_t kMax = 80;
  return text.size() <= kMax ? text : text.substr(0, kMax) + "...";
}

std::string hexByte(unsigned char byte) {
  static const char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[byte >> 4] + kDigits[byte & 15];
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    if (cp > 0x10ffff) cp = 0xfffd;
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Protocol 2 pickles bytes as _codecs.encode(text, "latin1"): the text's code points are the
// bytes. Returns false when the text has a code point above 255 (then it is not such a string).
bool utf8ToLatin1(const std::string& text, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if ((c & 0xe0) == 0xc0 && i + 1 < text.size()) {
      const std::uint32_t cp =
          ((c & 0x1fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3fu);
      if (cp > 0xff) return false;
      out += static_cast<char>(cp);
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

// Protocol 0's UNICODE argument is raw-unicode-escape: latin-1 bytes with \uXXXX / \UXXXXXXXX.
std::string rawUnicodeEscapeToUtf8(const std::string& raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size() && (raw[i + 1] == 'u' || raw[i + 1] == 'U')) {
      const std::size_t digits = raw[i + 1] == 'u' ? 4 : 8;
      if (i + 2 + digits <= raw.size()) {
        std::uint32_t cp = 0;
        bool ok = true;
        for (std::size_t k = 0; k < digits; ++k) {
          const int h = hexValue(raw[i + 2 + k]);
          if (h < 0) ok = false;
          cp = (cp << 4) | static_cast<std::uint32_t>(h < 0 ? 0 : h);
        }
        if (ok) {
          appendUtf8(out, cp);
          i += 1 + digits;
          continue;
        }
      }
    }
    appendUtf8(out, static_cast<unsigned char>(raw[i]));
  }
  return out;
}

// Protocol 0's STRING argument is a Python repr: quoted, with backslash escapes.
bool unescapeStringRepr(const std::string& repr, std::string& out) {
  if (repr.size() < 2 || (repr[0] != '\'' && repr[0] != '"') || repr.back() != repr[0]) {
    return false;
  }
  out.clear();
  const std::size_t end = repr.size() - 1;
  for (std::size_t i = 1; i < end; ++i) {
    if (repr[i] != '\\' || i + 1 >= end) {
      out += repr[i];
      continue;
    }
    const char e = repr[++i];
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case '\n':
        break;
      case 'x':
        if (i + 2 < end + 1 && hexValue(repr[i + 1]) >= 0 && hexValue(repr[i + 2]) >= 0) {
          out += static_cast<char>(hexValue(repr[i + 1]) * 16 + hexValue(repr[i + 2]));
          i += 2;
        } else {
          out += "\\x";
        }
        break;
      default:
        if (e >= '0' && e <= '7') {
          int value = e - '0';
          for (int k = 0; k < 2 && i + 1 < end && repr[i + 1] >= '0' && repr[i + 1] <= '7'; ++k) {
            value = value * 8 + (repr[++i] - '0');
          }
          out += static_cast<char>(value & 0xff);
        } else {
          out += e;  // \\, \', \" and unknown escapes keep the character
        }
    }
  }
  return true;
}

bool parseDecimal(const std::string& text, std::int64_t& value) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  const auto result = std::from_chars(begin, end, value);
  return result.ec == std::errc() && result.ptr == end && begin != end;
}

// from_chars, not strtod: a Qt application runs with the user's locale, where strtod may expect a
// decimal comma.
bool parseReal(const std::string& text, double& value) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  const auto result = std::from_chars(begin, end, value);
  return result.ec == std::errc() && result.ptr == end && begin != end;
}

// Python module names that pickle's fix_imports writes for Python 2 (torch.save uses protocol 2).
std::string python3Module(std::string module) {
  if (module == "__builtin__") return "builtins";
  if (module == "copy_reg") return "copyreg";
  return module;
}

// dtype name for a storage class or dtype global (empty when it is neither).
std::string storageDtype(const std::string& name) {
  static const std::unordered_map<std::string, std::string> kDtypes = {
      {"torch.float32", "Float"},
      {"torch.float", "Float"},
      {"torch.float16", "Half"},
      {"torch.half", "Half"},
      {"torch.bfloat16", "BFloat16"},
      {"torch.float64", "Double"},
      {"torch.double", "Double"},
      {"torch.int64", "Long"},
      {"torch.long", "Long"},
      {"torch.int32", "Int"},
      {"torch.int", "Int"},
      {"torch.int16", "Short"},
      {"torch.short", "Short"},
      {"torch.int8", "Char"},
      {"torch.uint8", "Byte"},
      {"torch.bool", "Bool"},
      {"torch.UntypedStorage", "Byte"},
      {"torch.storage.UntypedStorage", "Byte"},
      {"torch.ByteStorage", "Byte"},
      {"torch.complex64", "ComplexFloat"},
      {"torch.complex128", "ComplexDouble"}};
  const auto found = kDtypes.find(name);
  if (found != kDtypes.end()) return found->second;
  // torch.FloatStorage, torch.cuda.HalfStorage, ...: the class names the scalar type.
  static const std::string kSuffix = "Storage";
  for (const std::string prefix : {"torch.cuda.", "torch."}) {
    if (name.size() > prefix.size() + kSuffix.size() &&
        name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
      const std::string stem =
          name.substr(prefix.size(), name.size() - prefix.size() - kSuffix.size());
      if (stem.find('.') == std::string::npos && stem != "Typed" && stem != "Untyped") return stem;
    }
  }
  return {};
}

bool isMutableContainer(Kind kind) {
  return kind == Kind::List || kind == Kind::Tuple || kind == Kind::Dict || kind == Kind::Object;
}

bool hasChildren(const PickleValue& value) {
  return !value.items.empty() || !value.entries.empty() || value.state;
}

void clearChildren(PickleValue& value) {
  value.items.clear();
  value.items.shrink_to_fit();
  value.entries.clear();
  value.entries.shrink_to_fit();
  value.state.reset();
}

class Unpickler {
 public:
  explicit Unpickler(const std::string& bytes)
      : m_data(bytes), m_textBudget(8 * bytes.size() + (std::size_t{16} << 20)) {
    m_none = std::make_shared<PickleValue>();
    m_true = std::make_shared<PickleValue>();
    m_true->kind = Kind::Bool;
    m_true->boolean = true;
    m_false = std::make_shared<PickleValue>();
    m_false->kind = Kind::Bool;
  }

  // Every container's children are dropped before the containers themselves: freeing a long
  // chain of nested values through shared_ptr destructors would recurse once per level.
  ~Unpickler() {
    m_stack.clear();
    m_memo.clear();
    for (auto& node : m_containers) clearChildren(*node);
  }

  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  PickleValuePtr run() {
    if (m_data.empty()) throw PickleError("the pickle is empty");
    while (true) {
      if (m_pos >= m_data.size()) {
        throw PickleError("the pickle is truncated: it ends at offset " +
                          std::to_string(m_data.size()) + " without a STOP opcode");
      }
      m_opStart = m_pos;
      m_op = static_cast<unsigned char>(m_data[m_pos++]);
      if (m_op == '.') {
        if (m_stack.size() <= fence()) fail("there is nothing on the stack to return");
        Node root = m_stack.back();
        finish(root);
        return root;
      }
      step();
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    const char* name = opcodeName(m_op);
    throw PickleError(std::string(name ? name : "opcode") + " at offset " +
                      std::to_string(m_opStart) + ": " + what);
  }

  // Reading the input. Every read checks what is left, so a truncated or lying length field gives
  // a message, never an out-of-bounds read.
  std::size_t remaining() const { return m_data.size() - m_pos; }

  void need(std::uint64_t count) const {
    if (count > remaining()) {
      throw PickleError("the pickle is truncated: " + std::string(opcodeName(m_op)) +
                        " at offset " + std::to_string(m_opStart) + " needs " +
                        std::to_string(count) + " more bytes but only " +
                        std::to_string(remaining()) + " remain");
    }
  }

  std::uint64_t readLittle(int count) {
    need(static_cast<std::uint64_t>(count));
    std::uint64_t value = 0;
    for (int i = count - 1; i >= 0; --i) {
      value =
          (value << 8) | static_cast<unsigned char>(m_data[m_pos + static_cast<std::size_t>(i)]);
    }
    m_pos += static_cast<std::size_t>(count);
    return value;
  }

  std::string readBytes(std::uint64_t count) {
    need(count);
    std::string bytes = m_data.substr(m_pos, static_cast<std::size_t>(count));
    m_pos += static_cast<std::size_t>(count);
    return bytes;
  }

  std::string readLine() {
    const std::size_t end = m_data.find('\n', m_pos);
    if (end == std::string::npos) {
      throw PickleError("the pickle is truncated: " + std::string(opcodeName(m_op)) +
                        " at offset " + std::to_string(m_opStart) +
                        " has no end of line before the end of the data");
    }
    std::string line = m_data.substr(m_pos, end - m_pos);
    m_pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }

  // Making values.
  Node make(Kind kind) {
    if (++m_valueCount > kMaxValues) {
      fail("the pickle holds more than " + std::to_string(kMaxValues) +
           " values; it is damaged or was not written by torch.save");
    }
    auto node = std::make_shared<PickleValue>();
    node->kind = kind;
    if (isMutableContainer(kind)) m_containers.push_back(node);
    return node;
  }

  Node makeInt(std::int64_t value) {
    if (value >= kFirstSharedInt && value < kEndSharedInt) {
      Node& shared = m_smallInts[static_cast<std::size_t>(value - kFirstSharedInt)];
      if (!shared) {
        shared = make(Kind::Int);
        shared->integer = value;
      }
      return shared;
    }
    auto node = make(Kind::Int);
    node->integer = value;
    return node;
  }

  Node makeReal(double value) {
    auto node = make(Kind::Float);
    node->real = value;
    return node;
  }

  Node makeText(Kind kind, std::string text) {
    auto node = make(kind);
    chargeText(text.size());
    node->text = std::move(text);
    return node;
  }

  // Text read from the input costs what it occupies there, but a memoized string used again and
  // again (STACK_GLOBAL on long names, REDUCE on a long-named global, tensors on a storage with a
  // long key) is copied each time: without a budget a small file could demand terabytes.
  void chargeText(std::size_t bytes) {
    m_textBytes += bytes;
    if (m_textBytes > m_textBudget) {
      fail("the pickle's values hold more than " + std::to_string(m_textBudget) +
           " bytes of text; it is damaged or was not written by torch.save");
    }
  }

  void countElements(std::size_t count) {
    m_elementCount += count;
    if (m_elementCount > kMaxElements) {
      fail("the pickle puts more than " + std::to_string(kMaxElements) +
           " elements into containers; it is damaged or was not written by torch.save");
    }
  }

  // The stack. Values below the innermost MARK belong to an enclosing construct and must not be
  // consumed, as in CPython's C unpickler.
  std::size_t fence() const { return m_marks.empty() ? 0 : m_marks.back(); }

  void push(Node node) {
    if (m_stack.size() >= kMaxStack) {
      fail("the stack grew beyond " + std::to_string(kMaxStack) + " values");
    }
    m_stack.push_back(std::move(node));
  }

  Node pop() {
    if (m_stack.size() <= fence()) fail("the stack is empty");
    Node node = std::move(m_stack.back());
    m_stack.pop_back();
    return node;
  }

  Node& top() {
    if (m_stack.size() <= fence()) fail("the stack is empty");
    return m_stack.back();
  }

  std::vector<Node> popMark() {
    if (m_marks.empty()) fail("there is no MARK to go back to");
    const std::size_t mark = m_marks.back();
    m_marks.pop_back();
    std::vector<Node> items(std::make_move_iterator(m_stack.begin() + static_cast<long>(mark)),
                            std::make_move_iterator(m_stack.end()));
    m_stack.resize(mark);
    return items;
  }

  // Memo.
  void put(std::uint64_t index) {
    const Node& value = top();
    auto found = m_memo.find(index);
    if (found != m_memo.end()) {
      found->second = value;
      return;
    }
    if (m_memo.size() >= kMaxMemo) {
      fail("the memo grew beyond " + std::to_string(kMaxMemo) + " entries");
    }
    m_memo.emplace(index, value);
  }

  void get(std::uint64_t index) {
    const auto found = m_memo.find(index);
    if (found == m_memo.end()) fail("memo entry " + std::to_string(index) + " was never stored");
    push(found->second);
  }

  // Containers.
  void appendItem(const Node& target, Node item) {
    if (target->kind != Kind::List && target->kind != Kind::Object) {
      fail("cannot append to " + std::string(kindName(target->kind)));
    }
    countElements(1);
    target->items.push_back(std::move(item));
  }

  // A key's identity for Python's "same key replaces the value" rule; empty for keys whose
  // equality this reader does not model (they are simply appended).
  static std::string keyIdentity(const PickleValue& key) {
    // Long keys are not deduplicated: hashing a memoized megabyte key on every SETITEM would make
    // a small hostile file take hours. Real keys (parameter names) are far shorter.
    constexpr std::size_t kMaxIdentityBytes = 1024;
    if ((key.kind == Kind::String || key.kind == Kind::Bytes) &&
        key.text.size() > kMaxIdentityBytes) {
      return {};
    }
    switch (key.kind) {
      case Kind::String:
        return "s" + key.text;
      case Kind::Bytes:
        return "y" + key.text;
      case Kind::Int:
        return "i" + std::to_string(key.integer);
      case Kind::Bool:
        return key.boolean ? "i1" : "i0";
      case Kind::None:
        return "n";
      default:
        return {};
    }
  }

  void setItem(const Node& target, Node key, Node value) {
    if (target->kind != Kind::Dict && target->kind != Kind::Object) {
      fail("cannot set an item of " + std::string(kindName(target->kind)));
    }
    // An index per dict keeps repeated keys O(1); it is built lazily for dicts that were filled
    // by copying (dict(d)).
    auto [slot, inserted] = m_dictIndex.try_emplace(target.get());
    auto& index = slot->second;
    if (inserted) {
      for (std::size_t i = 0; i < target->entries.size(); ++i) {
        const std::string id = keyIdentity(*target->entries[i].first);
        if (!id.empty()) index[id] = i;
      }
    }
    const std::string id = keyIdentity(*key);
    if (!id.empty()) {
      const auto found = index.find(id);
      if (found != index.end()) {
        target->entries[found->second].second = std::move(value);
        return;
      }
      index.emplace(id, target->entries.size());
    }
    countElements(1);
    target->entries.emplace_back(std::move(key), std::move(value));
  }

  Node copySequence(Kind kind, const PickleValue* source) {
    auto node = make(kind);
    if (source && (source->kind == Kind::List || source->kind == Kind::Tuple)) {
      countElements(source->items.size());
      node->items = source->items;
    }
    return node;
  }

  // Storages and tensors.
  Node persistentLoad(const Node& pid) {
    if (pid->kind == Kind::Tuple && !pid->items.empty() &&
        (pid->items[0]->kind == Kind::String || pid->items[0]->kind == Kind::Bytes) &&
        pid->items[0]->text == "storage") {
      // torch.save: ('storage', storage class, key, location, numel); the legacy format adds
      // view metadata as a sixth element.
      if (pid->items.size() < 5) fail("the storage reference has fewer than 5 fields");
      const PickleValue& type = *pid->items[1];
      const PickleValue& key = *pid->items[2];
      const PickleValue& numel = *pid->items[4];
      std::string dtype;
      if (type.kind == Kind::Global) dtype = storageDtype(type.text);
      if (type.kind == Kind::Object) {
        // A TypedStorage object built from a dtype global.
        for (const auto& item : type.items) {
          if (dtype.empty() && item->kind == Kind::Global) dtype = storageDtype(item->text);
        }
      }
      if (dtype.empty()) {
        fail("the storage's type " +
             (type.kind == Kind::Global || type.kind == Kind::Object
                  ? "'" + excerpt(type.text) + "'"
                  : kindName(type.kind)) +
             " is not a torch storage type");
      }
      if (key.kind != Kind::String && key.kind != Kind::Bytes) {
        fail("the storage's key is not a string");
      }
      if (numel.kind != Kind::Int || numel.integer < 0) {
        fail("the storage's size is not a non-negative integer");
      }
      auto storage = make(Kind::Object);
      storage->text = "torch.storage.TypedStorage";
      chargeText(key.text.size());
      storage->tensor.storageKey = key.text;
      storage->tensor.dtype = dtype;
      storage->tensor.storageNumel = numel.integer;
      storage->tensor.shape = {numel.integer};
      storage->tensor.stride = {1};
      m_storages.insert(storage.get());
      return storage;
    }
    // Some other persistent id: keep it visible rather than guess.
    auto node = make(Kind::Object);
    node->text = "persistent_load";
    node->items.push_back(pid);
    return node;
  }

  std::vector<std::int64_t> sizes(const PickleValue& value, const char* what) {
    if (value.kind != Kind::Tuple && value.kind != Kind::List) {
      fail(std::string("the tensor's ") + what + " is " + kindName(value.kind) + ", not a tuple");
    }
    std::vector<std::int64_t> out;
    out.reserve(value.items.size());
    for (const auto& item : value.items) {
      if (item->kind != Kind::Int || item->integer < 0) {
        fail(std::string("the tensor's ") + what +
             " holds something other than a non-negative integer");
      }
      out.push_back(item->integer);
    }
    return out;
  }

  static bool truthy(const PickleValue& value) {
    return (value.kind == Kind::Bool && value.boolean) ||
           (value.kind == Kind::Int && value.integer != 0);
  }

  // torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  // backward_hooks[, metadata]) and the older _rebuild_tensor (the first four).
  Node rebuildTensor(const std::vector<PickleValuePtr>& args) {
    if (args.size() < 4) fail("_rebuild_tensor_v2 needs at least 4 arguments");
    if (!m_storages.count(args[0].get())) {
      fail(std::string("_rebuild_tensor_v2 got ") + kindName(args[0]->kind) +
           " instead of a storage");
    }
    if (args[1]->kind != Kind::Int || args[1]->integer < 0) {
      fail("the tensor's storage offset is not a non-negative integer");
    }
    auto node = make(Kind::Tensor);
    PickleTensor& tensor = node->tensor;
    chargeText(args[0]->tensor.storageKey.size());
    tensor = args[0]->tensor;
    tensor.storageOffset = args[1]->integer;
    tensor.shape = sizes(*args[2], "size");
    tensor.stride = sizes(*args[3], "stride");
    if (tensor.shape.size() != tensor.stride.size()) {
      fail("the tensor's size and stride differ in length");
    }
    tensor.requiresGrad = args.size() > 4 && truthy(*args[4]);
    // The caller will read elements [offset, offset + extent] of the storage's record, so check
    // here, with overflow-safe arithmetic, that they exist.
    bool empty = false;
    std::int64_t last = tensor.storageOffset;
    bool overflow = false;
    for (std::size_t i = 0; i < tensor.shape.size(); ++i) {
      if (tensor.shape[i] == 0) empty = true;
      std::int64_t step = 0;
      overflow |= __builtin_mul_overflow(tensor.shape[i] - (tensor.shape[i] > 0 ? 1 : 0),
                                         tensor.stride[i], &step);
      overflow |= __builtin_add_overflow(last, step, &last);
    }
    std::int64_t numel = 1;
    for (auto dim : tensor.shape) overflow |= __builtin_mul_overflow(numel, dim, &numel);
    if (overflow) fail("the tensor's size is too large");
    if (!empty && last >= tensor.storageNumel) {
      fail("the tensor needs element " + std::to_string(last) + " of storage '" +
           excerpt(tensor.storageKey) + "', which holds only " +
           std::to_string(tensor.storageNumel));
    }
    return node;
  }

  // torch._utils._rebuild_parameter(data, requires_grad, backward_hooks[, state]).
  Node rebuildParameter(const std::vector<PickleValuePtr>& args, const Node& callable) {
    if (args.size() < 2 || args[0]->kind != Kind::Tensor) return genericObject(callable, args);
    auto node = make(Kind::Tensor);
    chargeText(args[0]->tensor.storageKey.size());
    node->tensor = args[0]->tensor;
    node->tensor.requiresGrad = truthy(*args[1]);
    return node;
  }

  Node genericObject(const Node& callable, const std::vector<PickleValuePtr>& args) {
    auto node = make(Kind::Object);
    chargeText(callable->text.size());
    node->text = callable->text;
    countElements(args.size());
    node->items = args;
    return node;
  }

  Node makeDict(const std::vector<PickleValuePtr>& args) {
    auto node = make(Kind::Dict);
    // dict(mapping) / OrderedDict(pairs): copy them in.
    if (!args.empty()) {
      const PickleValue& source = *args[0];
      if (source.kind == Kind::Dict) {
        for (const auto& [k, v] : source.entries) {
          setItem(node, std::const_pointer_cast<PickleValue>(k),
                  std::const_pointer_cast<PickleValue>(v));
        }
      } else if (source.kind == Kind::List || source.kind == Kind::Tuple) {
        for (const auto& pair : source.items) {
          if ((pair->kind == Kind::Tuple || pair->kind == Kind::List) && pair->items.size() == 2) {
            setItem(node, std::const_pointer_cast<PickleValue>(pair->items[0]),
                    std::const_pointer_cast<PickleValue>(pair->items[1]));
          }
        }
      }
    }
    return node;
  }

  // What calling `callable` with `args` gives: REDUCE and NEWOBJ. Only the functions torch.save
  // uses get meaning; anything else becomes an Object that records the call.
  Node call(const Node& callable, const Node& argsNode, int nesting = 0) {
    if (callable->kind != Kind::Global && callable->kind != Kind::Object) {
      fail(std::string("cannot call ") + kindName(callable->kind));
    }
    if (argsNode->kind != Kind::Tuple && argsNode->kind != Kind::List) {
      fail(std::string("the arguments are ") + kindName(argsNode->kind) + ", not a tuple");
    }
    const auto& args = argsNode->items;
    if (callable->kind == Kind::Object) return genericObject(callable, args);
    const std::string& name = callable->text;
    const PickleValue* first = args.empty() ? nullptr : args[0].get();
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      return rebuildTensor(args);
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      return rebuildParameter(args, callable);
    }
    if (name == "collections.OrderedDict" || name == "builtins.dict") return makeDict(args);
    if (name == "collections.defaultdict") {
      // defaultdict(factory[, mapping]): the factory does not matter to a reader.
      std::vector<PickleValuePtr> rest;
      if (args.size() > 1) rest.push_back(args[1]);
      return makeDict(rest);
    }
    if (name == "builtins.set" || name == "builtins.frozenset" || name == "builtins.list") {
      return copySequence(Kind::List, first);
    }
    if (name == "builtins.tuple" || name == "torch.Size") return copySequence(Kind::Tuple, first);
    if (name == "_codecs.encode" && first && first->kind == Kind::String) {
      std::string bytes;
      if (!utf8ToLatin1(first->text, bytes)) bytes = first->text;
      return makeText(Kind::Bytes, std::move(bytes));
    }
    if ((name == "builtins.bytearray" || name == "builtins.bytes") &&
        (!first || first->kind == Kind::Bytes)) {
      return makeText(Kind::Bytes, first ? first->text : std::string());
    }
    if ((name == "builtins.bytearray" || name == "builtins.bytes") && first &&
        first->kind == Kind::String) {
      std::string bytes;
      if (!utf8ToLatin1(first->text, bytes)) bytes = first->text;
      return makeText(Kind::Bytes, std::move(bytes));
    }
    if (name == "copyreg._reconstructor" && first && first->kind == Kind::Global) {
      // Protocol 0/1's way to make an instance of a plain class.
      auto node = make(Kind::Object);
      chargeText(first->text.size());
      node->text = first->text;
      return node;
    }
    if ((name == "copyreg.__newobj__" || name == "copyreg.__newobj_ex__") && first &&
        first->kind == Kind::Global) {
      // cls.__new__(cls, *args) spelled as a call.
      auto node = make(Kind::Object);
      chargeText(first->text.size());
      node->text = first->text;
      countElements(args.size() - 1);
      node->items.assign(args.begin() + 1, args.end());
      return node;
    }
    if (name == "torch._tensor._rebuild_from_type_v2" && nesting == 0 && args.size() >= 3 &&
        args[0]->kind == Kind::Global &&
        (args[2]->kind == Kind::Tuple || args[2]->kind == Kind::List)) {
      // A tensor with attributes or a subclass: (rebuild function, type, its args, state).
      return call(std::const_pointer_cast<PickleValue>(args[0]),
                  std::const_pointer_cast<PickleValue>(args[2]), nesting + 1);
    }
    return genericObject(callable, args);
  }

  void build(const Node& target, Node state) {
    if (target->kind == Kind::Object || target->kind == Kind::Dict) {
      target->state = std::move(state);
    }
    // BUILD on other values (a tensor's legacy set_ state, ...) carries nothing a reader needs.
  }

  Node global(const std::string& module, const std::string& name) {
    return makeText(Kind::Global, python3Module(module) + "." + name);
  }

  Node integerFromText(const std::string& text) {
    std::int64_t value = 0;
    if (parseDecimal(text, value)) return makeInt(value);
    double real = 0;
    if (!text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos &&
        parseReal(text, real)) {
      return makeReal(real);  // beyond 64 bits
    }
    fail("'" + excerpt(text) + "' is not an integer");
  }

  // LONG1/LONG4: little-endian two's complement of any length.
  Node integerFromBytes(const std::string& bytes) {
    if (bytes.empty()) return makeInt(0);
    const bool negative = static_cast<unsigned char>(bytes.back()) & 0x80;
    if (bytes.size() <= 8) {
      std::uint64_t value = negative ? ~std::uint64_t{0} : 0;
      for (std::size_t i = bytes.size(); i-- > 0;) {
        value = (value << 8) | static_cast<unsigned char>(bytes[i]);
      }
      return makeInt(static_cast<std::int64_t>(value));
    }
    // Does it still fit in 64 bits (sign extension only above)?
    bool fits = static_cast<bool>(static_cast<unsigned char>(bytes[7]) & 0x80) == negative;
    for (std::size_t i = 8; i < bytes.size() && fits; ++i) {
      fits = static_cast<unsigned char>(bytes[i]) == (negative ? 0xff : 0x00);
    }
    if (fits) return integerFromBytes(bytes.substr(0, 8));
    double real = 0;
    for (std::size_t i = bytes.size(); i-- > 0;) {
      const auto b = static_cast<unsigned char>(bytes[i]);
      real = real * 256 + (negative ? 255 - b : b);
      if (std::isinf(real)) break;
    }
    return makeReal(negative ? -(real + 1) : real);
  }

  std::uint64_t lengthFrom32Signed() {
    const auto value = static_cast<std::int32_t>(static_cast<std::uint32_t>(readLittle(4)));
    if (value < 0) fail("the length is negative");
    return static_cast<std::uint64_t>(value);
  }

  void step() {
    switch (m_op) {
      case 0x80: {  // PROTO
        const auto protocol = readLittle(1);
        if (protocol > 5) {
          fail("pickle protocol " + std::to_string(protocol) +
               " is newer than Scalpel understands (0-5)");
        }
        break;
      }
      case 0x95:  // FRAME: framing only groups the opcodes that follow; the data is contiguous.
        readLittle(8);
        break;
      case '(':
        if (m_marks.size() >= kMaxMarks) fail("MARKs nest too deeply");
        m_marks.push_back(m_stack.size());
        break;
      case '0':  // POP; like CPython, a MARK right on top is what gets popped
        if (!m_marks.empty() && m_marks.back() == m_stack.size()) {
          m_marks.pop_back();
        } else {
          pop();
        }
        break;
      case '1':
        popMark();
        break;
      case '2': {
        Node copy = top();
        push(std::move(copy));
        break;
      }
      case 'N':
        push(m_none);
        break;
      case 0x88:
        push(m_true);
        break;
      case 0x89:
        push(m_false);
        break;
      case 'I': {
        const std::string line = readLine();
        if (line == "00") {
          push(m_false);
        } else if (line == "01") {
          push(m_true);
        } else {
          push(integerFromText(line));
        }
        break;
      }
      case 'J':
        push(makeInt(static_cast<std::int32_t>(static_cast<std::uint32_t>(readLittle(4)))));
        break;
      case 'K':
        push(makeInt(static_cast<std::int64_t>(readLittle(1))));
        break;
      case 'M':
        push(makeInt(static_cast<std::int64_t>(readLittle(2))));
        break;
      case 'L': {
        std::string line = readLine();
        if (!line.empty() && line.back() == 'L') line.pop_back();
        push(integerFromText(line));
        break;
      }
      case 0x8a:
        push(integerFromBytes(readBytes(readLittle(1))));
        break;
      case 0x8b:
        push(integerFromBytes(readBytes(lengthFrom32Signed())));
        break;
      case 'F': {
        const std::string line = readLine();
        double value = 0;
        if (!parseReal(line, value)) fail("'" + excerpt(line) + "' is not a number");
        push(makeReal(value));
        break;
      }
      case 'G': {
        need(8);
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) {
          bits = (bits << 8) | static_cast<unsigned char>(m_data[m_pos++]);  // big-endian
        }
        double value = 0;
        std::memcpy(&value, &bits, sizeof value);
        push(makeReal(value));
        break;
      }
      case 'S': {
        std::string text;
        if (!unescapeStringRepr(readLine(), text)) fail("the string is not quoted");
        push(makeText(Kind::String, std::move(text)));
        break;
      }
      case 'T':
        push(makeText(Kind::String, readBytes(lengthFrom32Signed())));
        break;
      case 'U':
        push(makeText(Kind::String, readBytes(readLittle(1))));
        break;
      case 'V':
        push(makeText(Kind::String, rawUnicodeEscapeToUtf8(readLine())));
        break;
      case 'X':
        push(makeText(Kind::String, readBytes(readLittle(4))));
        break;
      case 0x8c:
        push(makeText(Kind::String, readBytes(readLittle(1))));
        break;
      case 0x8d:
        push(makeText(Kind::String, readBytes(readLittle(8))));
        break;
      case 'B':
        push(makeText(Kind::Bytes, readBytes(readLittle(4))));
        break;
      case 'C':
        push(makeText(Kind::Bytes, readBytes(readLittle(1))));
        break;
      case 0x8e:
      case 0x96:
        push(makeText(Kind::Bytes, readBytes(readLittle(8))));
        break;
      case 0x97:
      case 0x98:
        fail("out-of-band buffers (pickle protocol 5) are not part of a torch.save file");
      case ']':
        push(make(Kind::List));
        break;
      case 'a': {
        Node item = pop();
        appendItem(top(), std::move(item));
        break;
      }
      case 'e':
      case 0x90: {  // APPENDS, ADDITEMS
        std::vector<Node> items = popMark();
        const Node& target = top();
        for (auto& item : items) appendItem(target, std::move(item));
        break;
      }
      case 'l':
      case 't':
      case 0x91: {  // LIST, TUPLE, FROZENSET
        std::vector<Node> items = popMark();
        Node node = make(m_op == 't' ? Kind::Tuple : Kind::List);
        countElements(items.size());
        node->items.assign(std::make_move_iterator(items.begin()),
                           std::make_move_iterator(items.end()));
        push(std::move(node));
        break;
      }
      case ')':
        push(make(Kind::Tuple));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t count = m_op - 0x84u;
        if (m_stack.size() < fence() + count) fail("the stack holds too few values");
        Node node = make(Kind::Tuple);
        countElements(count);
        for (std::size_t i = m_stack.size() - count; i < m_stack.size(); ++i) {
          node->items.push_back(std::move(m_stack[i]));
        }
        m_stack.resize(m_stack.size() - count);
        push(std::move(node));
        break;
      }
      case '}':
        push(make(Kind::Dict));
        break;
      case 'd': {
        std::vector<Node> items = popMark();
        if (items.size() % 2) fail("the dict has a key without a value");
        Node node = make(Kind::Dict);
        for (std::size_t i = 0; i < items.size(); i += 2) setItem(node, items[i], items[i + 1]);
        push(std::move(node));
        break;
      }
      case 's': {
        Node value = pop();
        Node key = pop();
        setItem(top(), std::move(key), std::move(value));
        break;
      }
      case 'u': {
        std::vector<Node> items = popMark();
        if (items.size() % 2) fail("SETITEMS has a key without a value");
        const Node& target = top();
        for (std::size_t i = 0; i < items.size(); i += 2) setItem(target, items[i], items[i + 1]);
        break;
      }
      case 0x8f:
        push(make(Kind::List));
        break;
      case 'c': {
        const std::string module = readLine();
        const std::string name = readLine();
        push(global(module, name));
        break;
      }
      case 0x93: {
        Node name = pop();
        Node module = pop();
        if (name->kind != Kind::String || module->kind != Kind::String) {
          fail("the module and name are not strings");
        }
        push(global(module->text, name->text));
        break;
      }
      case 'R': {
        Node args = pop();
        Node callable = pop();
        push(call(callable, args));
        break;
      }
      case 0x81: {
        Node args = pop();
        Node cls = pop();
        push(call(cls, args));
        break;
      }
      case 0x92: {
        pop();  // keyword arguments: nothing torch.save relies on
        Node args = pop();
        Node cls = pop();
        push(call(cls, args));
        break;
      }
      case 'i': {  // INST: module\nname\n, arguments since the MARK
        const std::string module = readLine();
        const std::string name = readLine();
        std::vector<Node> items = popMark();
        Node args = make(Kind::Tuple);
        countElements(items.size());
        args->items.assign(std::make_move_iterator(items.begin()),
                           std::make_move_iterator(items.end()));
        push(call(global(module, name), args));
        break;
      }
      case 'o': {  // OBJ: class and arguments since the MARK
        std::vector<Node> items = popMark();
        if (items.empty()) fail("there is no class to instantiate");
        Node args = make(Kind::Tuple);
        countElements(items.size() - 1);
        args->items.assign(std::make_move_iterator(items.begin() + 1),
                           std::make_move_iterator(items.end()));
        push(call(items[0], args));
        break;
      }
      case 'b': {
        Node state = pop();
        build(top(), std::move(state));
        break;
      }
      case 'q':
        put(readLittle(1));
        break;
      case 'r':
        put(readLittle(4));
        break;
      case 'p': {
        std::int64_t index = 0;
        const std::string line = readLine();
        if (!parseDecimal(line, index) || index < 0) {
          fail("'" + excerpt(line) + "' is not a memo index");
        }
        put(static_cast<std::uint64_t>(index));
        break;
      }
      case 0x94:
        put(m_memo.size());
        break;
      case 'h':
        get(readLittle(1));
        break;
      case 'j':
        get(readLittle(4));
        break;
      case 'g': {
        std::int64_t index = 0;
        const std::string line = readLine();
        if (!parseDecimal(line, index) || index < 0) {
          fail("'" + excerpt(line) + "' is not a memo index");
        }
        get(static_cast<std::uint64_t>(index));
        break;
      }
      case 'Q': {
        Node pid = pop();
        push(persistentLoad(pid));
        break;
      }
      case 'P':
        push(persistentLoad(makeText(Kind::String, readLine())));
        break;
      case 0x82:
      case 0x83:
      case 0x84: {  // EXT1/2/4: copyreg's extension registry, which torch never uses
        const std::uint64_t code = readLittle(m_op == 0x82 ? 1 : m_op == 0x83 ? 2 : 4);
        push(makeText(Kind::Global, "copyreg.extension_" + std::to_string(code)));
        break;
      }
      default:
        throw PickleError("unknown opcode " + hexByte(m_op) + " at offset " +
                          std::to_string(m_opStart) +
                          "; the file is damaged or is not a pickle that torch.save wrote");
    }
  }

  // Makes the result safe to walk recursively: cuts reference cycles and refuses nesting beyond
  // kMaxPickleDepth, in one iterative depth-first pass (each value once, as values are shared).
  void finish(const Node& root) {
    struct Frame {
      PickleValue* node;
      std::size_t next;
      int height;
    };
    enum class Color { Open, Done };
    struct Visit {
      Color color;
      int height;
    };
    std::unordered_map<const PickleValue*, Visit> visits;
    std::vector<Frame> frames;
    if (hasChildren(*root)) {
      frames.push_back({root.get(), 0, 1});
      visits[root.get()] = {Color::Open, 1};
    }
    // The i-th child slot of a value: items, then entries' keys and values, then its state.
    auto slot = [](PickleValue& value, std::size_t i) -> PickleValuePtr* {
      if (i < value.items.size()) return &value.items[i];
      i -= value.items.size();
      if (i < 2 * value.entries.size()) {
        auto& entry = value.entries[i / 2];
        return i % 2 ? &entry.second : &entry.first;
      }
      i -= 2 * value.entries.size();
      if (i == 0 && value.state) return &value.state;
      return nullptr;
    };
    while (!frames.empty()) {
      Frame& frame = frames.back();
      PickleValuePtr* child = slot(*frame.node, frame.next++);
      if (!child) {
        const int height = frame.height;
        visits[frame.node] = {Color::Done, height};
        frames.pop_back();
        if (!frames.empty()) frames.back().height = std::max(frames.back().height, height + 1);
        continue;
      }
      if (!*child) {
        *child = m_none;  // never happens with what the parser builds; keeps callers null-free
        continue;
      }
      // Every value was made mutable by this parser; only the public type is const.
      auto* value = const_cast<PickleValue*>(child->get());
      if (!hasChildren(*value)) {
        frame.height = std::max(frame.height, 2);
        continue;
      }
      const auto found = visits.find(value);
      if (found != visits.end()) {
        if (found->second.color == Color::Open) {
          *child = m_none;  // the edge closes a cycle
        } else {
          frame.height = std::max(frame.height, found->second.height + 1);
          if (frame.height > kMaxPickleDepth) tooDeep();
        }
        continue;
      }
      if (static_cast<int>(frames.size()) >= kMaxPickleDepth) tooDeep();
      visits[value] = {Color::Open, 1};
      frames.push_back({value, 0, 1});
    }
    if (!visits.empty() && visits[root.get()].height > kMaxPickleDepth) tooDeep();
    // Values that were built but are not part of the result (popped, or only in the memo) may
    // still form long chains; unlink them so that freeing them does not recurse.
    for (auto& node : m_containers) {
      if (!visits.count(node.get())) clearChildren(*node);
    }
    // The result now owns what it reaches; the destructor must leave it alone.
    m_containers.clear();
  }

  [[noreturn]] void tooDeep() const {
    throw PickleError("values nest more than " + std::to_string(kMaxPickleDepth) +
                      " levels deep; the file is damaged or was not written by torch.save");
  }

  const std::string& m_data;
  std::size_t m_pos = 0;
  std::size_t m_opStart = 0;
  unsigned char m_op = 0;
  std::vector<Node> m_stack;
  std::vector<std::size_t> m_marks;
  std::unordered_map<std::uint64_t, Node> m_memo;
  // Every List/Tuple/Dict/Object made, so that all links can be cut before freeing.
  std::vector<Node> m_containers;
  std::unordered_set<const PickleValue*> m_storages;
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, std::size_t>> m_dictIndex;
  std::size_t m_valueCount = 0;
  std::size_t m_elementCount = 0;
  std::size_t m_textBytes = 0;
  const std::size_t m_textBudget;
  Node m_none, m_true, m_false;
  std::vector<Node> m_smallInts =
      std::vector<Node>(static_cast<std::size_t>(kEndSharedInt - kFirstSharedInt));
};

}  // namespace

PickleValuePtr parsePickle(const std::string& bytes) {
  Unpickler unpickler(bytes);
  return unpickler.run();
}

}  // namespace scalpel
