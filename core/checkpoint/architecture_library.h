#pragma once

// Torch-free: the library of architectures Scalpel can rebuild a state dict into. Each entry is a
// TorchScript file of a torchvision classification model without its weights (architectures/
// make_architectures.py writes them at build time) and the names, shapes and dtypes of its
// state-dict keys, so a checkpoint that holds only weights is recognised by its keys alone.

#include <cstdint>
#include <string>
#include <vector>

namespace scalpel {

// One state-dict entry as a checkpoint or an architecture names it.
struct TensorSignature {
  std::string name;
  std::vector<std::int64_t> shape;
  std::string dtype = "F32";  // safetensors' short names: F32, F16, BF16, F64, I64, ...
};

struct Architecture {
  std::string name;    // torchvision's builder, e.g. "resnet18" (or "vit_b_16_384" per image size)
  std::string family;  // e.g. "resnet"
  std::string file;    // the TorchScript file, absolute
  std::vector<std::int64_t> inputShape;  // 1×C×H×W
  int resize = 0;                        // shorter side before the centre crop to H×W
  std::vector<double> mean, std;
  std::string interpolation;          // "bilinear" or "bicubic"
  std::int64_t classes = 0;           // outputs of the file as stored
  std::vector<std::string> head;      // keys whose first dimension is the number of classes
  std::vector<TensorSignature> keys;  // in state-dict order
};

// What the library makes of a checkpoint's keys.
struct Recognition {
  struct Fit {
    const Architecture* architecture = nullptr;
    std::int64_t classes = 0;  // read off the head keys
  };
  std::vector<Fit> fits;  // every key matches (the head's first dimension free); best first
  // When nothing fits: the closest architecture and what keeps it from fitting.
  const Architecture* closest = nullptr;
  double sharedFraction = 0;  // of the union of both key sets, matching in name and shape
  std::vector<std::string> missing, unexpected, misshaped;  // names ("a: 3×3 here, 4×3 there")
  // Keys the checkpoint has that no inference needs (GoogLeNet's auxiliary heads): dropped.
  std::vector<std::string> ignored;
};

class ArchitectureLibrary {
 public:
  // The library the programs use: architectureLibraryDir()'s, read once. Thread-safe.
  static const ArchitectureLibrary& standard();
  // Reads DIR/index.json; returns "" or what is wrong.
  std::string load(const std::string& dir);

  const std::string& dir() const { return m_dir; }
  const std::string& error() const { return m_error; }  // why standard() is empty
  const std::vector<Architecture>& architectures() const { return m_architectures; }
  const Architecture* find(const std::string& name) const;
  std::vector<std::string> names() const;

  Recognition recognise(const std::vector<TensorSignature>& keys) const;

 private:
  std::string m_dir, m_error;
  std::vector<Architecture> m_architectures;
};

// Where the library is: $SCALPEL_ARCHITECTURES, else the folder setArchitectureLibraryDir() named
// (installed programs name theirs), else the build tree's architectures/.
std::string architectureLibraryDir();
void setArchitectureLibraryDir(const std::string& dir);  // before the first standard()

}  // namespace scalpel
