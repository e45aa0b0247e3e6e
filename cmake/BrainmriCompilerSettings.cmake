# Warnings, ccache and sanitizer flags shared by every target of the project.

find_program(BRAINMRI_CCACHE ccache)
if(BRAINMRI_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # Precompiled headers are only cacheable when ccache is told to tolerate their quirks.
  set(_brainmri_ccache ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "${BRAINMRI_CCACHE}")
  set(CMAKE_C_COMPILER_LAUNCHER ${_brainmri_ccache})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_brainmri_ccache})
endif()

add_library(brainmri_warnings INTERFACE)
target_compile_options(brainmri_warnings INTERFACE -Wall -Wextra -Wshadow -Wnon-virtual-dtor)
if(CMAKE_UNITY_BUILD AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC takes every file a unity source includes for a header, where a class that uses a type of
  # the file's anonymous namespace would be an error: in unity builds the warning says nothing.
  # File-by-file builds (-DCMAKE_UNITY_BUILD=OFF) keep it.
  target_compile_options(brainmri_warnings INTERFACE -Wno-subobject-linkage)
endif()
if(BRAINMRI_WARNINGS_AS_ERRORS)
  # GCC 12's -Warray-bounds and -Wstringop-overflow report false positives inside libstdc++'s
  # inlined std::string code (GCC bug 105651 and relatives): still shown, not fatal.
  target_compile_options(brainmri_warnings INTERFACE -Werror -Wno-error=array-bounds -Wno-error=stringop-overflow)
endif()

set(BRAINMRI_SANITIZE "" CACHE STRING "Sanitizers to enable, e.g. address,undefined")
if(BRAINMRI_SANITIZE)
  add_compile_options(-fsanitize=${BRAINMRI_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${BRAINMRI_SANITIZE})
endif()
