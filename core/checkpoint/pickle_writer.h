#pragma once

// Writes the data.pkl of a state dict the way torch.save does, so that a file Scalpel saves opens
// with Python's torch.load, also with weights_only=True (which allows only a few globals and
// opcodes). Torch-free: the caller writes the zip and the tensors' data/<key> records.

#include <cstdint>
#include <string>
#include <vector>

namespace scalpel {

struct StateDictEntry {
  std::string name;
  std::string dtype;  // as PickleTensor::dtype: "Float", "Half", "BFloat16", "Double", "Long", ...
  std::vector<std::int64_t> shape;
  std::string storageKey;  // the archive's data/<key> holding the tensor's elements
  std::int64_t numel = 0;  // elements in that storage (at least the tensor's own)
};

// data.pkl of an OrderedDict state dict in entry order: protocol 2, collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 of ('storage', torch.<Dtype>Storage, key, 'cpu', numel) with
// storage offset 0 and contiguous strides. Throws std::invalid_argument for a dtype torch has no
// storage class for, a negative size, or a storage smaller than its tensor.
std::string writeStateDictPickle(const std::vector<StateDictEntry>& entries);

}  // namespace scalpel
