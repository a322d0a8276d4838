# Included by the top-level CMakeLists.txt instead of its find_package() calls when
# SCALPEL_DEVICE_DEPS names a folder made by scripts/prepare-device-deps: a bare GPU machine with
# PyTorch but none of Debian's -dev packages. It defines the targets the Debian build gets from
# find_package (spdlog::spdlog, nlohmann_json::nlohmann_json, CLI11::CLI11, ZLIB::ZLIB) from the
# carried headers, and builds stb's implementations (libstb on Debian) from cmake/stb_implementation.c.
# Sets STB_INCLUDE_DIR and STB_LIBRARY as the Debian branch does.

set(_deps "${SCALPEL_DEVICE_DEPS}")
get_filename_component(_deps "${_deps}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")
foreach(_header spdlog/spdlog.h fmt/format-inl.h nlohmann/json.hpp CLI/CLI.hpp stb/stb_image.h)
  if(NOT EXISTS "${_deps}/include/${_header}")
    message(FATAL_ERROR "SCALPEL_DEVICE_DEPS=${_deps}: no include/${_header} (run scripts/prepare-device-deps)")
  endif()
endforeach()
message(STATUS "Device build: header-only spdlog/fmt, nlohmann json, CLI11 and stb from ${_deps}")

# spdlog with Debian's external fmt, both header-only (no libspdlog.so / libfmt.so there).
add_library(spdlog::spdlog INTERFACE IMPORTED GLOBAL)
set_target_properties(spdlog::spdlog PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_deps}/include"
  INTERFACE_COMPILE_DEFINITIONS "SPDLOG_HEADER_ONLY;SPDLOG_FMT_EXTERNAL;FMT_HEADER_ONLY")
add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED GLOBAL)
set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_deps}/include")
add_library(CLI11::CLI11 INTERFACE IMPORTED GLOBAL)
set_target_properties(CLI11::CLI11 PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_deps}/include")

# zlib: the system's when it has one, else Debian's static libz.a (position-independent code).
find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  if(NOT EXISTS "${_deps}/zlib/lib/libz.a")
    message(FATAL_ERROR "no zlib on this system and none in ${_deps}/zlib (run scripts/prepare-device-deps)")
  endif()
  message(STATUS "Device build: zlib from ${_deps}/zlib (static)")
  add_library(ZLIB::ZLIB STATIC IMPORTED GLOBAL)
  set_target_properties(ZLIB::ZLIB PROPERTIES
    IMPORTED_LOCATION "${_deps}/zlib/lib/libz.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_deps}/zlib/include")
endif()

# stb: Debian ships the implementations compiled (libstb); here one C file compiles them.
enable_language(C)
set(STB_INCLUDE_DIR "${_deps}/include/stb")
add_library(stb STATIC "${CMAKE_CURRENT_LIST_DIR}/stb_implementation.c")
target_include_directories(stb SYSTEM PUBLIC "${STB_INCLUDE_DIR}")
set_target_properties(stb PROPERTIES POSITION_INDEPENDENT_CODE ON)
set(STB_LIBRARY stb)

# The fixture script runs with the python3 that has PyTorch there (pip's, on PATH).
if(NOT DEFINED CACHE{SCALPEL_PYTHON})
  find_program(_python3 python3 REQUIRED)
  set(SCALPEL_PYTHON "${_python3}" CACHE FILEPATH "Python with PyTorch and torchvision for fixtures")
endif()

unset(_deps)
unset(_header)
