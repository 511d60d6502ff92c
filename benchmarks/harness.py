"""Timing, machine description and peak-rate measurement shared by every benchmark."""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a newly spawned Python process: no threads, allocator state or compiled programs of this
    one reach it (``fn`` and its arguments must pickle)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def timeit(run: Callable[[], Any], sync: Callable[[Any], Any], *, repeats: int = 5, inner: int = 10,
           min_time: float = 0.2) -> dict:
    """Median, min and max seconds per call of ``run`` over ``repeats`` timed groups of ``inner`` calls.

    The first call is timed on its own (``first_s``: compilation plus one run) and is the warm-up;
    ``inner`` grows until one group lasts ``min_time`` so timer resolution does not matter.
    """
    t = time.perf_counter()
    sync(run())
    first = time.perf_counter() - t
    sync(run())
    while True:
        t = time.perf_counter()
        for _ in range(inner):
            out = run()
        sync(out)
        if time.perf_counter() - t >= min_time or inner >= 10_000:
            break
        inner *= 2
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = run()
        sync(out)
        times.append((time.perf_counter() - t) / inner)
    return {"median_s": float(np.median(times)), "min_s": min(times), "max_s": max(times), "first_s": first}


def jax_sync(out: Any) -> Any:
    return jax.block_until_ready(out)


def matmul_peak(dtype: Any = jnp.float32, n: int | None = None) -> float:
    """Measured FLOP/s of a large square matrix product on the default device: the practical ceiling."""
    n = n or (8192 if jax.default_backend() == "gpu" else 2048)
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    r = timeit(lambda: f(a, b), jax_sync, repeats=5, inner=2)
    return 2 * n ** 3 / r["median_s"]


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        cpu = (names[0] if names else cpu) + (" (AVX-512)" if "avx512f" in cpuinfo else "")
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "backend": jax.default_backend(),
            "devices": ", ".join(d.device_kind for d in jax.devices()), "jax": jax.__version__}
    try:
        import flax
        info["flax"] = flax.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info
