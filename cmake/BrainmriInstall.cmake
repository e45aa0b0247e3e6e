# cmake --install: a prefix that runs wherever it is copied (a cluster's shared filesystem, another
# directory, a container) without LD_LIBRARY_PATH and without the .venv/ it was built from.
#
# LibTorch and the libraries it carries (in a CUDA torch wheel: cuDNN, cuBLAS, NCCL, ... from the
# nvidia-* wheels beside it) are copied into <prefix>/lib/brainmri, and the programs look there
# ($ORIGIN/../lib/brainmri in their RUNPATH). Copied rather than referenced: a RUNPATH back into
# the build machine's .venv/ breaks when that venv is removed, moved or its torch upgraded, and
# cannot follow the prefix to another machine. The system's libraries (OpenCV, HDF5, Open MPI, ...)
# are not copied: Open MPI must be the site's own, matching its launcher and network, and the
# others come from the same Debian/Ubuntu packages on every node; the directory of one that a
# module provides outside the system paths stays in the RUNPATH (CMAKE_INSTALL_RPATH_USE_LINK_PATH).
#
# Included before the targets are made (CMAKE_INSTALL_RPATH initializes their INSTALL_RPATH);
# brainmri_install_torch() adds the copy once Torch has been found.

include(GNUInstallDirs)
set(BRAINMRI_INSTALL_TORCH_DIR "${CMAKE_INSTALL_LIBDIR}/brainmri")
set(CMAKE_INSTALL_RPATH "$ORIGIN/../${BRAINMRI_INSTALL_TORCH_DIR}")
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)

function(brainmri_install_torch)
  set(torch_library_dir "${TORCH_INSTALL_PREFIX}/lib")
  if(NOT IS_DIRECTORY "${torch_library_dir}")
    message(FATAL_ERROR "brainmri: LibTorch's libraries are not in ${torch_library_dir} (TORCH_INSTALL_PREFIX); "
                        "cmake --install could not copy them")
  endif()
  install(CODE "set(BRAINMRI_TORCH_LIBRARY_DIR \"${torch_library_dir}\")
                set(BRAINMRI_INSTALL_TORCH_DIR \"${BRAINMRI_INSTALL_TORCH_DIR}\")")
  install(SCRIPT "${PROJECT_SOURCE_DIR}/cmake/install_torch_libraries.cmake")
endfunction()
