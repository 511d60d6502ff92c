"""Keep freed host memory in the process, so XLA:CPU programs stop paying page faults every step.

XLA:CPU allocates an execution's temporaries afresh on every call (hundreds of MB for a CIFAR
ResNet training step), and glibc serves blocks over 32 MB, and every block of a thread's own arena
over 64 MB, with fresh ``mmap``s that it unmaps when they are freed. Every step then faults in and
zero-fills its temporaries again, in kernel time. With glibc told to keep one heap, to serve large
blocks from it and not to give freed memory back to the OS (as PyTorch's and JAX's device allocators
keep theirs), the page faults stop; PyTorch in the same process gains too. Measurements:
docs/performance.md, "Keeping freed host memory".

:func:`keep_freed_memory` changes the whole process's allocator, so importing cnnjax never calls it:
``cnnjax.train.fit``, the ``cnnjax`` command and the benchmarks do, and so can a user's own script, as
early as possible (the one-arena limit reaches only threads that have not allocated yet; the other two
settings apply at once). ``CNNJAX_KEEP_HOST_MEMORY=0`` in the environment makes it a no-op. The cost:
the process keeps its peak host memory, and the heap grows by a few temporaries' worth over the first
steps (a freed block does not always fit the next request) before every step is served from memory it
already has.
"""

from __future__ import annotations

import ctypes
import os
import platform

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


_done: list[bool] = []


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed memory (see the module docstring); whether it is set. Idempotent."""
    if _done:
        return _done[0]
    if (os.environ.get("CNNJAX_KEEP_HOST_MEMORY", "1") == "0" or platform.system() != "Linux"
            or platform.libc_ver()[0] != "glibc"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_ARENA_MAX, 1)  # threads' own arenas cannot hold blocks over 64 MB
    ok &= libc.mallopt(_M_MMAP_MAX, 0)  # large blocks from the heap, not fresh mappings
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # and freed ones kept there
    _done.append(bool(ok))
    return bool(ok)


def is_set() -> bool:
    """Whether :func:`keep_freed_memory` has set the allocator in this process."""
    return bool(_done and _done[0])
