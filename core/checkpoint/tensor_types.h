#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
// The names checkpoint files give tensor types: torch.save's storage classes ("Float", "Half")
// and safetensors' ("F32", "F16"), one table for reading and writing both.
#include <torch/types.h>

#include <string>

namespace scalpel {

struct TensorTypeName {
  torch::ScalarType type;
  const char* storage;      // torch.<storage>Storage, as PickleTensor::dtype
  const char* safetensors;  // safetensors' dtype
};

inline const TensorTypeName* tensorTypeNames(std::size_t& count) {
  static const TensorTypeName names[] = {
      {torch::kFloat32, "Float", "F32"},      {torch::kFloat16, "Half", "F16"},
      {torch::kBFloat16, "BFloat16", "BF16"}, {torch::kFloat64, "Double", "F64"},
      {torch::kInt64, "Long", "I64"},         {torch::kInt32, "Int", "I32"},
      {torch::kInt16, "Short", "I16"},        {torch::kInt8, "Char", "I8"},
      {torch::kUInt8, "Byte", "U8"},          {torch::kBool, "Bool", "BOOL"}};
  count = sizeof names / sizeof names[0];
  return names;
}

// The type either kind of name stands for; throws for one Scalpel does not read.
inline torch::ScalarType scalarTypeNamed(const std::string& name) {
  std::size_t count = 0;
  const auto* names = tensorTypeNames(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (name == names[i].storage || name == names[i].safetensors) return names[i].type;
  }
  throw std::runtime_error("tensors of type " + name + " are not supported");
}

// `type`'s names; throws for a type no checkpoint format stores.
inline const TensorTypeName& namesOf(torch::ScalarType type) {
  std::size_t count = 0;
  const auto* names = tensorTypeNames(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (names[i].type == type) return names[i];
  }
  throw std::runtime_error("tensors of this type cannot be stored in a checkpoint");
}

}  // namespace scalpel
