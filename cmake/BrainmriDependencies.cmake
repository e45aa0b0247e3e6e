# Finds every third-party dependency. A missing one stops configure with the package that
# provides it, so a new user knows what to install instead of reading a CMake backtrace.

function(brainmri_require found what hint)
  if(NOT ${found})
    message(FATAL_ERROR "brainmri: ${what} was not found.\n  ${hint}\n"
                        "  scripts/setup.sh installs everything on Debian/Ubuntu.")
  endif()
endfunction()

find_package(HDF5 COMPONENTS C)
brainmri_require(HDF5_FOUND "HDF5 (C library)" "Debian/Ubuntu: apt-get install libhdf5-dev")
add_library(brainmri_hdf5 INTERFACE)
target_include_directories(brainmri_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
target_link_libraries(brainmri_hdf5 INTERFACE ${HDF5_LIBRARIES})
target_compile_definitions(brainmri_hdf5 INTERFACE ${HDF5_DEFINITIONS} H5_USE_110_API)

find_package(nlohmann_json 3.2 QUIET)
brainmri_require(nlohmann_json_FOUND "nlohmann_json (JSON for Modern C++)"
                 "Debian/Ubuntu: apt-get install nlohmann-json3-dev")

find_package(Boost 1.71 COMPONENTS program_options)
brainmri_require(Boost_FOUND "Boost.Program_options" "Debian/Ubuntu: apt-get install libboost-program-options-dev")

# The log (src/common/log.cpp only: its header hides spdlog, whose fmt would meet LibTorch's copy).
if(BRAINMRI_WITH_SPDLOG)
  find_package(spdlog QUIET)
  brainmri_require(spdlog_FOUND "spdlog (the log)"
                   "Debian/Ubuntu: apt-get install libspdlog-dev, or configure with -DBRAINMRI_WITH_SPDLOG=OFF (the same log lines, uncoloured)")
endif()

find_package(Threads REQUIRED)
find_package(OpenSSL QUIET COMPONENTS Crypto)
brainmri_require(OpenSSL_FOUND "OpenSSL libcrypto (SHA-256 of shards, models and configs)" "Debian/Ubuntu: apt-get install libssl-dev")

if(BRAINMRI_WITH_OPENCV)
  find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs img_hash)
  brainmri_require(OpenCV_FOUND "OpenCV (core, imgproc, imgcodecs, img_hash)"
                   "Debian/Ubuntu: apt-get install libopencv-dev, or configure with -DBRAINMRI_WITH_OPENCV=OFF to build only the trainer")
  find_package(ZLIB QUIET)
  brainmri_require(ZLIB_FOUND "zlib (inflate of HDF5 chunks in tests)" "Debian/Ubuntu: apt-get install zlib1g-dev")
  find_package(PkgConfig QUIET)
  brainmri_require(PkgConfig_FOUND "pkg-config" "Debian/Ubuntu: apt-get install pkg-config")
  pkg_check_modules(libdeflate QUIET IMPORTED_TARGET libdeflate)
  pkg_check_modules(turbojpeg QUIET IMPORTED_TARGET libturbojpeg)
  brainmri_require(turbojpeg_FOUND "TurboJPEG (libjpeg-turbo's API, fast JPEG decoding)" "Debian/Ubuntu: apt-get install libturbojpeg0-dev")
  brainmri_require(libdeflate_FOUND "libdeflate (parallel deflate of HDF5 chunks)" "Debian/Ubuntu: apt-get install libdeflate-dev")
endif()

# brainmri serve: an image decoder (OpenCV) and an HTTP server (cpp-httplib, via its pkg-config
# file, which carries the TLS/compression defines its compiled library was built with).
set(BRAINMRI_SERVE_ENABLED OFF)
if(BRAINMRI_WITH_SERVE AND BRAINMRI_WITH_OPENCV AND BRAINMRI_WITH_TORCH)
  pkg_check_modules(httplib QUIET IMPORTED_TARGET cpp-httplib)
  brainmri_require(httplib_FOUND "cpp-httplib (the HTTP server of brainmri serve)"
                   "Debian/Ubuntu: apt-get install libcpp-httplib-dev, or configure with -DBRAINMRI_WITH_SERVE=OFF")
  set(BRAINMRI_SERVE_ENABLED ON)
endif()

if(BRAINMRI_WITH_PLOTS)
  find_package(PkgConfig QUIET)
  brainmri_require(PkgConfig_FOUND "pkg-config" "Debian/Ubuntu: apt-get install pkg-config")
  pkg_check_modules(plplot QUIET IMPORTED_TARGET plplot-c++ plplot)
  brainmri_require(plplot_FOUND "PLplot's C++ API (report figures)"
                   "Debian/Ubuntu: apt-get install libplplot-dev plplot-driver-cairo, or configure with -DBRAINMRI_WITH_PLOTS=OFF")
endif()

set(BRAINMRI_NCCL_ENABLED OFF)
if(BRAINMRI_WITH_TORCH)
  # Without an architecture list, Torch's CMake compiles and runs a probe on the local GPU, which
  # fails on a build machine without one (and with CMake < 3.27, on nvcc 13). Our own code has no
  # CUDA kernels; the list only matters to projects that compile .cu files against Torch.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  find_package(Torch QUIET)
  if(NOT Torch_FOUND)
    # Fall back to the torch wheel of the python3 on PATH, so `cmake --preset release` works
    # after `pip install torch` without naming its CMake prefix.
    find_package(Python3 QUIET COMPONENTS Interpreter)
    if(Python3_Interpreter_FOUND)
      execute_process(COMMAND "${Python3_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                      OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(_torch_prefix)
        list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
        find_package(Torch QUIET)
      endif()
    endif()
  endif()
  brainmri_require(Torch_FOUND "LibTorch 2.x"
                   "pip install torch and pass -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)'), or point CMAKE_PREFIX_PATH at an unpacked LibTorch download (libtorch/share/cmake)")
  if(Torch_VERSION VERSION_LESS 2.0)
    message(FATAL_ERROR "brainmri: LibTorch ${Torch_VERSION} is too old; LibTorch 2.x is required.")
  endif()
  # Torch's own flags (the C++ ABI define among them) must reach every consumer.
  add_library(brainmri_torch INTERFACE)
  # The torch wheel's libtorch.so exports its own, partial copy of std::filesystem (built with an
  # older toolchain; remove_all jumps to a null pointer). Listing libstdc++ first makes the
  # dynamic linker resolve those symbols to the system library.
  target_link_libraries(brainmri_torch INTERFACE stdc++ ${TORCH_LIBRARIES})
  target_compile_options(brainmri_torch INTERFACE ${TORCH_CXX_FLAGS})

  find_package(MPI COMPONENTS C)
  brainmri_require(MPI_FOUND "MPI (C bindings)" "Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin")
  # mpi.h would otherwise pull in the deprecated MPI C++ bindings, which need libmpi_cxx. Global,
  # although only src/distributed includes mpi.h: every Torch target reuses one precompiled
  # <torch/torch.h>, which is only valid under the same definitions.
  add_compile_definitions(OMPI_SKIP_MPICXX MPICH_SKIP_MPICXX)

  set(_torch_has_cuda OFF)
  if(TARGET torch_cuda OR CAFFE2_USE_CUDA OR USE_CUDA)
    set(_torch_has_cuda ON)
  endif()
  set(BRAINMRI_TORCH_HAS_CUDA ${_torch_has_cuda})  # CUDA graphs of the training step
  if(NOT BRAINMRI_WITH_NCCL STREQUAL "OFF")
    find_package(NCCL QUIET)
    if(_torch_has_cuda AND NCCL_FOUND)
      set(BRAINMRI_NCCL_ENABLED ON)
    elseif(BRAINMRI_WITH_NCCL STREQUAL "ON")
      message(FATAL_ERROR "brainmri: BRAINMRI_WITH_NCCL=ON but CUDA LibTorch=${_torch_has_cuda}, NCCL found=${NCCL_FOUND}.\n"
                          "  NCCL comes with the CUDA toolkit packages (libnccl-dev) or the nvidia-nccl-cu* wheel; set NCCL_ROOT to its prefix.")
    endif()
  endif()
endif()
