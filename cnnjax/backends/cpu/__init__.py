"""The CPU backend: faster implementations of :mod:`cnnjax.functional`'s ops on XLA:CPU.

- :mod:`.conv`: the conv strategies (oneDNN, im2col, taps, XLA's conv with a materialized kernel-gradient
  input), the rule that picks one per shape, and transposed convs (oneDNN, tiled matrix product);
- :mod:`.pool`: max pooling (tiled strided views, oneDNN, a stride-phase derivative rule);
- :mod:`.norm`: oneDNN's training batch norm;
- :mod:`.onednn`, :mod:`.onednn_batch_norm`, :mod:`.onednn_max_pool`: the oneDNN bridge (C++ beside them,
  compiled once per machine on first use) and its JAX primitives;
- :mod:`.fusion`: the rewrite cnnjax's jitted steps apply, fusing ``relu(bn(x) + r)`` and ``pool(relu(conv + b))``;
- :mod:`.host_memory`: the allocator setting that ``fit``, the CLI and the benchmarks turn on.

:func:`register` adds them to :mod:`cnnjax.functional.dispatch`; importing :mod:`cnnjax` does that, and
changes nothing else: the oneDNN bridge is built on the first op that would use it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from cnnjax.backends.cpu import conv, fusion, norm, onednn, pool
from cnnjax.backends.cpu.host_memory import keep_freed_memory
from cnnjax.functional import dispatch

__all__ = ["keep_freed_memory", "onednn", "register", "status", "without_onednn"]


def register() -> None:
    """Register every CPU implementation, rule, rewrite and compiler option with the dispatch point."""
    conv.register()
    pool.register()
    norm.register()
    fusion.register()


@contextlib.contextmanager
def without_onednn() -> Iterator[None]:
    """Inside the block, automatic choices take no oneDNN kernel (``dispatch.excluding("onednn")``): for programs
    that XLA partitions across devices, whose partitioner would gather a oneDNN call's operands and run it whole
    on every device (XLA's own ops are partitioned along the batch)."""
    with dispatch.excluding("onednn"):
        yield


def status() -> dict[str, str | None]:
    """``{"onednn": None}`` where the oneDNN kernels run here, else the reason they do not (building them if needed)."""
    return {"onednn": onednn.unavailable_reason()}
