#include "checkpoint/architecture_library.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

namespace scalpel {

namespace {

std::mutex g_dirMutex;
std::string g_dir;  // set by the programs; empty: the environment or the build tree

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// GoogLeNet and Inception v3 train with auxiliary heads that their forward skips at inference;
// checkpoints saved from such training keep them, the scripted architectures (aux_logits=False)
// do not.
bool isAuxiliaryHead(const std::string& key) {
  return startsWith(key, "aux1.") || startsWith(key, "aux2.") || startsWith(key, "AuxLogits.");
}

// BatchNorm's step counter is missing from checkpoints of older PyTorch versions; it only
// matters with momentum=None, which no torchvision model uses, and load_state_dict allows it too.
bool isOptional(const std::string& key) {
  const std::string counter = "num_batches_tracked";
  return key.size() >= counter.size() &&
         key.compare(key.size() - counter.size(), counter.size(), counter) == 0;
}

// "64×3×7×7" (model/layer_tree.h's formatShape lives a floor above).
std::string shapeText(const std::vector<std::int64_t>& shape) {
  std::string text;
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? "×" : "") + std::to_string(shape[i]);
  return shape.empty() ? "scalar" : text;
}

}  // namespace

std::string architectureLibraryDir() {
  if (const char* env = std::getenv("SCALPEL_ARCHITECTURES"); env && *env) return env;
  std::lock_guard lock(g_dirMutex);
  return g_dir.empty() ? std::string(SCALPEL_ARCHITECTURE_BUILD_DIR) : g_dir;
}

void setArchitectureLibraryDir(const std::string& dir) {
  std::lock_guard lock(g_dirMutex);
  g_dir = dir;
}

const ArchitectureLibrary& ArchitectureLibrary::standard() {
  static const ArchitectureLibrary library = [] {
    ArchitectureLibrary read;
    read.m_error = read.load(architectureLibraryDir());
    return read;
  }();
  return library;
}

std::string ArchitectureLibrary::load(const std::string& dir) {
  namespace fs = std::filesystem;
  m_dir = dir;
  m_architectures.clear();
  const fs::path index = fs::path(dir) / "index.json";
  std::ifstream in(index);
  if (!in) {
    return "Scalpel's architecture library is missing (" + index.string() +
           ") — reinstall Scalpel, or set SCALPEL_ARCHITECTURES to the folder that holds it";
  }
  try {
    const auto json = nlohmann::json::parse(in);
    for (const auto& entry : json.at("architectures")) {
      Architecture a;
      a.name = entry.at("name").get<std::string>();
      a.family = entry.value("family", a.name);
      a.file = (fs::path(dir) / entry.at("file").get<std::string>()).string();
      a.inputShape = entry.at("input_shape").get<std::vector<std::int64_t>>();
      a.resize = entry.value("resize", 0);
      a.mean = entry.value("mean", std::vector<double>{});
      a.std = entry.value("std", std::vector<double>{});
      a.interpolation = entry.value("interpolation", "bilinear");
      a.classes = entry.value("classes", std::int64_t{0});
      a.head = entry.value("head", std::vector<std::string>{});
      for (const auto& key : entry.at("keys")) {
        TensorSignature signature;
        signature.name = key.at(0).get<std::string>();
        signature.shape = key.at(1).get<std::vector<std::int64_t>>();
        if (key.size() > 2) signature.dtype = key.at(2).get<std::string>();
        a.keys.push_back(std::move(signature));
      }
      m_architectures.push_back(std::move(a));
    }
  } catch (const nlohmann::json::exception& error) {
    m_architectures.clear();
    return index.string() + " is damaged (" + error.what() + ") — reinstall Scalpel";
  }
  return {};
}

const Architecture* ArchitectureLibrary::find(const std::string& name) const {
  for (const auto& a : m_architectures) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

std::vector<std::string> ArchitectureLibrary::names() const {
  std::vector<std::string> names;
  for (const auto& a : m_architectures) names.push_back(a.name);
  return names;
}

Recognition ArchitectureLibrary::recognise(const std::vector<TensorSignature>& keys) const {
  Recognition result;
  std::map<std::string, const TensorSignature*> given;
  for (const auto& key : keys) given[key.name] = &key;

  struct Comparison {
    const Architecture* architecture;
    std::int64_t classes = -1;
    std::size_t matched = 0;
    std::vector<std::string> missing, unexpected, misshaped, ignored;
  };
  const auto compare = [&](const Architecture& a) {
    Comparison c{&a};
    std::set<std::string> known;
    const std::set<std::string> head(a.head.begin(), a.head.end());
    for (const auto& expected : a.keys) {
      known.insert(expected.name);
      const auto it = given.find(expected.name);
      if (it == given.end()) {
        if (!isOptional(expected.name)) c.missing.push_back(expected.name);
        continue;
      }
      const auto& shape = it->second->shape;
      bool fits = shape.size() == expected.shape.size();
      if (fits && head.count(expected.name) && !shape.empty()) {
        // The number of classes is free, but the same in every head key.
        fits = std::equal(shape.begin() + 1, shape.end(), expected.shape.begin() + 1) &&
               (c.classes < 0 || c.classes == shape[0]);
        if (fits) c.classes = shape[0];
      } else {
        fits = fits && shape == expected.shape;
      }
      if (fits) {
        ++c.matched;
      } else {
        c.misshaped.push_back(expected.name + " (" + shapeText(shape) + " in the file, " +
                              shapeText(expected.shape) + " in " + a.name + ")");
      }
    }
    for (const auto& key : keys) {
      if (known.count(key.name)) continue;
      (isAuxiliaryHead(key.name) ? c.ignored : c.unexpected).push_back(key.name);
    }
    if (c.classes < 0) c.classes = a.classes;
    return c;
  };

  std::vector<Comparison> comparisons;
  for (const auto& a : m_architectures) comparisons.push_back(compare(a));
  const auto share = [](const Comparison& c) {
    const auto all = c.architecture->keys.size() + c.unexpected.size();
    return all ? static_cast<double>(c.matched) / static_cast<double>(all) : 0.0;
  };
  const Comparison* closest = nullptr;
  for (const auto& c : comparisons) {
    if (c.missing.empty() && c.unexpected.empty() && c.misshaped.empty()) {
      result.fits.push_back({c.architecture, c.classes});
      result.ignored = c.ignored;
    } else if (!closest || share(c) > share(*closest)) {
      closest = &c;
    }
  }
  if (result.fits.empty() && closest) {
    result.closest = closest->architecture;
    result.sharedFraction = share(*closest);
    result.missing = closest->missing;
    result.unexpected = closest->unexpected;
    result.misshaped = closest->misshaped;
  }
  return result;
}

}  // namespace scalpel
