"""Memory allocation tuning for a command-line process that runs one command and exits (issue 12).

glibc serves each allocation above its mmap threshold (32 MB at most) with a fresh ``mmap`` and hands
it back to the system when it is freed. One ``organseg autolabel`` run on a 512x512x305 CT allocates
and frees its 80 MB masks and 320 MB label maps dozens of times, and every new one is faulted in
page by page again (measured: 0.04 s per 80 MB mask and 0.13 s per 320 MB array with 4 KB pages;
with the kernel's transparent huge pages, sometimes 0.3-0.7 s when it compacts memory to find them).
``reuse_freed_memory`` makes glibc serve large blocks from its heap and keep freed memory in the
process, so that the next array reuses pages already mapped: the whole command on chest_lung2 at
1 mm went from 9.7 to 7.6 s and from 10.5 to 8.3 s (two pairs of runs under the same load), peak
memory 1.54 -> 1.60 GB.

Called by the ``organseg`` commands that do this (``autolabel``), never on import: a long-lived
process that imports ``organseglib`` (3D Slicer) keeps its allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Keep freed large blocks in the process for reuse (glibc only); True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # no mmap for large blocks (they come from the heap), and never trim the heap's top
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    log.debug("large allocations %s from the heap and kept for reuse", "served" if ok else "not")
    return ok
