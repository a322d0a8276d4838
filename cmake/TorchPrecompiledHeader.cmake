# LibTorch's headers take ~12 s of the 20-30 s a file that includes them needs to compile. A
# precompiled <torch/script.h> has them parsed once per build: scalpel_core makes it, and the
# torch tests, benchmarks and GPU checks reuse it. Files that include no torch skip it, since
# loading it (430 MB) would cost them ~4 s. -DSCALPEL_TORCH_PCH=OFF turns it off.
option(SCALPEL_TORCH_PCH "Precompile LibTorch's headers" ON)

# Core headers that include torch themselves: a file including one of them includes torch. (Files
# that include only <ATen/Parallel.h> or <torch/cuda.h> parse a fraction of it: faster without.)
set(SCALPEL_TORCH_INCLUDES_REGEX
    "^#include [<\"](torch/script\\.h|torch/jit\\.h|torch/csrc/|model/script_model\\.h|model/activation_taps\\.h|train/task_loss\\.h|train/foreach_optimizer\\.h|data/batch_stream\\.h|distributed/gradient_averager\\.h|analysis/activation_moments\\.h|analysis/gradient_metrics\\.h)")

function(scalpel_skip_torch_pch_where_unused target)
  get_target_property(sources ${target} SOURCES)
  get_target_property(dir ${target} SOURCE_DIR)
  get_target_property(binary_dir ${target} BINARY_DIR)
  get_target_property(automoc ${target} AUTOMOC)
  if(automoc)  # moc's output that no source includes: generated at build time, no torch in it
    set_source_files_properties("${binary_dir}/${target}_autogen/mocs_compilation.cpp"
                                TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
  foreach(source IN LISTS sources)
    if(NOT source MATCHES "\\.cpp$")
      continue()
    endif()
    if(NOT IS_ABSOLUTE "${source}")
      set(source "${dir}/${source}")
    endif()
    file(STRINGS "${source}" torch_includes REGEX "${SCALPEL_TORCH_INCLUDES_REGEX}")
    if(NOT torch_includes)
      set_source_files_properties("${source}" TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
endfunction()

# scalpel_core only (it defines the header every other target reuses).
function(scalpel_precompile_torch target)
  if(SCALPEL_TORCH_PCH)
    target_precompile_headers(${target} PRIVATE <torch/script.h>)
    scalpel_skip_torch_pch_where_unused(${target})
  endif()
endfunction()

# GCC takes a precompiled header only under the code model it was made with: scalpel_core is
# position-independent (-fPIC), executables default to -fPIE, so these compile with -fPIC too.
function(scalpel_reuse_torch_pch target)
  if(SCALPEL_TORCH_PCH)
    target_precompile_headers(${target} REUSE_FROM scalpel_core)
    target_compile_options(${target} PRIVATE -fPIC)
    scalpel_skip_torch_pch_where_unused(${target})
  endif()
endfunction()
