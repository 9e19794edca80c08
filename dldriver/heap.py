"""Keep the memory of freed file buffers for the next file, instead of handing it back to the kernel.

glibc serves a request of 128 KiB or more with its own mmap and unmaps it when freed (it raises that
limit to the largest block freed so far, up to 32 MiB), and gives the top of its heap back to the kernel
once more than twice that limit lies free there. Writing many files of a few MiB, each built in a fresh
buffer while the last ones are still being sent, crosses those limits over and over: every new buffer is
then faulted in again from the kernel, a zeroed page at a time, about 1 ms per 4 MiB, as much as building
the file. Fixed limits (blocks up to 32 MiB from the heap, trimming only past 512 MiB free) keep a
process's few file buffers in its heap, to be reused as they are. Processes that write files call it: the
generate command and its workers; so do `run` and `checkpoint`, whose reads from object stores receive
each object's body in a fresh buffer of that size (~0.1-0.3 s of CPU per GB read otherwise, issue 15).
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1       # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_ABOVE = 32 << 20       # the most glibc allows (HEAP_MAX_SIZE / 2 on 64-bit machines)
TRIM_ABOVE = 512 << 20


def keep_freed_buffers() -> bool:
    """Set the limits in this process; False where the C library is not glibc (nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
