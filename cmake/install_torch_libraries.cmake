# Runs at install time (cmake/BrainmriInstall.cmake says why): copies LibTorch's shared libraries,
# and those of the directories its libraries load from, into ${CMAKE_INSTALL_PREFIX}/lib/brainmri.
#
# Whole directories, not only what the ELF headers name: CUDA libraries load parts of themselves by
# name at run time (cuDNN its engines, NVRTC its builtins, NVSHMEM its transports, LibTorch its CUDA
# linear algebra), which no dependency scan sees. Every library the wheel links finds its
# neighbours through $ORIGIN in its own RPATH, so one flat directory serves them all.

file(GLOB torch_libraries "${BRAINMRI_TORCH_LIBRARY_DIR}/*.so*")
# Python's binding needs libpython and is loaded only by Python.
list(FILTER torch_libraries EXCLUDE REGEX "/libtorch_python\\.so")

# The directories outside the system's that LibTorch's libraries load from: in a CUDA wheel, the
# nvidia-* wheels' lib/ folders; in a LibTorch download, none beyond its own lib/.
file(GET_RUNTIME_DEPENDENCIES
  LIBRARIES ${torch_libraries}
  RESOLVED_DEPENDENCIES_VAR resolved
  UNRESOLVED_DEPENDENCIES_VAR unresolved
  POST_EXCLUDE_REGEXES "^(/usr)?/lib(32|64)?/")
# The GPU driver's libraries belong to each machine and must never be copied.
list(FILTER unresolved EXCLUDE REGEX "^lib(cuda|nvidia-ml)\\.so")
if(unresolved)
  message(FATAL_ERROR "brainmri: LibTorch needs libraries that were not found: ${unresolved}.\n"
                      "  Reinstall torch (scripts/setup.sh) and run cmake --install again.")
endif()

set(directories "${BRAINMRI_TORCH_LIBRARY_DIR}")
foreach(library IN LISTS resolved)
  get_filename_component(directory "${library}" DIRECTORY)
  list(APPEND directories "${directory}")
endforeach()
list(REMOVE_DUPLICATES directories)

set(bundle "${CMAKE_INSTALL_PREFIX}/${BRAINMRI_INSTALL_TORCH_DIR}")
foreach(directory IN LISTS directories)
  file(GLOB libraries "${directory}/*.so" "${directory}/*.so.*")
  list(FILTER libraries EXCLUDE REGEX "/libtorch_python\\.so")
  message(STATUS "LibTorch's libraries from ${directory} -> ${bundle}")
  file(INSTALL ${libraries} DESTINATION "${bundle}" MESSAGE_NEVER)
endforeach()
