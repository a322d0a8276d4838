#pragma once

// Torch-facing: include only from core sources and core tests, never from the UI.
#include <torch/script.h>

#include <vector>

#include "analysis/gradient_profile.h"
#include "data/batch_stream.h"

namespace scalpel {

// RGN and SNR of every parameter tensor of `model` over `batches` (the model is put in eval
// mode; gradients are of the mean cross-entropy per batch, or of the mean squared error for
// regression targets). BatchNorm affine parameters are marked, not dropped. Leaves the
// parameters' .grad cleared.
std::vector<ParameterGradient> parameterGradients(torch::jit::Module& model,
                                                  const std::vector<Batch>& batches);

}  // namespace scalpel
