// See heap.hpp for why training keeps freed memory.

#include "brainmri/common/heap.hpp"

#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace brainmri {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // M_MMAP_THRESHOLD cannot be raised above 32 MiB, so mmap is switched off for the main arena
    // (other threads' arenas still fall back to it for blocks larger than their heaps), and the
    // top of the heap is never trimmed, which would give the pages back just the same.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1);
  });
#endif
}

}  // namespace brainmri
