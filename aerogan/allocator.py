"""Keep freed memory in the process for reuse, so large CPU tensors do not page-fault on every allocation.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns it
with ``munmap`` when freed. A network's activations on a 256-px tile are tens of MiB each, so every layer of
every batch maps new memory and the kernel zero-fills it a 4 KiB page at a time: on the CPU, measured on a
T2 DSen2 (64 features, 6 blocks, batch 4, 2 threads), 3.9 million minor page faults and 12.7 s of system time
per 15.5 s batch, against 7.0 s with the memory kept. PyTorch's own tuning guide answers this with jemalloc or
tcmalloc preloaded; :func:`reuse_freed_memory` gets the same effect from glibc itself (``mallopt``): no mmap
for large blocks, and freed memory stays in the heap up to :data:`TRIM_THRESHOLD` bytes. The ``aerogan``
command calls it once at start; ``AEROGAN_REUSE_FREED_MEMORY=0`` leaves glibc's defaults. It changes the
whole process's allocator, so the library never calls it on its own. :func:`share_malloc_arena` (one malloc
arena for every thread) is the benchmarks' other glibc setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["ENV", "TRIM_THRESHOLD", "freed_memory_reused", "reuse_freed_memory", "share_malloc_arena"]

#: Environment switch: ``0`` (or ``false``, ``no``, ``off``) keeps glibc's defaults.
ENV = "AEROGAN_REUSE_FREED_MEMORY"
#: Free memory (bytes) kept at the top of the heap before it goes back to the system (mallopt's int maximum).
TRIM_THRESHOLD = 2**31 - 1
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_applied = False


def freed_memory_reused() -> bool:
    """Whether :func:`reuse_freed_memory` took effect in this process (benchmarks record it)."""
    return _applied


def reuse_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed memory for reuse (glibc only); True when applied.

    A no-op returning False off glibc (macOS, Windows, musl) and when :data:`ENV` says no.
    """
    if os.environ.get(ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    global _applied
    # setting the trim threshold also stops glibc's dynamic mmap threshold
    _applied = _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) or _applied
    return _applied


def share_malloc_arena() -> bool:
    """Make new threads allocate from glibc's main arena (``mallopt(M_ARENA_MAX, 1)``); False where unavailable.

    By default glibc gives each new thread its own malloc arena, and the arenas do not behave alike: in an
    A/A test (three identical plain loops in three threads taking turns) the first arm ran 5-6 % slower than
    the other two, run after run, which is as large as the overheads the benchmarks measure. With one arena
    every arm allocates the way a training run in the main thread does, and the A/A ratios are 1.00 +- 0.01.
    Set before the first thread; threads that already have an arena keep it.
    """
    return _mallopt(_M_ARENA_MAX, 1)


def _mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt(param, value)``; False off glibc (macOS, Windows, musl) or when glibc refuses."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(param, value) == 1  # 1 on success
