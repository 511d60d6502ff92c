"""Conv strategies on CPU: each training workload and conv shape under "lax", "xla_cpu", "im2col", "taps" (where it
applies), "onednn" (where this machine can run it) and "auto".

This is the measurement behind :mod:`cnnjax.backends.cpu.conv`'s rule.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from benchmarks.harness import jax_sync, timeit
from benchmarks.ops import CONVS, _jax_fwd_bwd
from benchmarks.workloads import Workload, cnnjax_runner
from cnnjax import functional as F
from cnnjax.backends.cpu import onednn
from cnnjax.backends.cpu.conv import is_small_dense
from cnnjax.train.step import jit_step

MODELS = [
    Workload("MNIST-1D CNN, batch 100", "mnist1d_cnn", (40, 1), 100, optimizer="sgd"),
    Workload("MNIST-1D ConvBase, batch 100", "mnist1d_convbase", (40, 1), 100, optimizer="sgd"),
    Workload("SimpleCNN, batch 128", "simple_cnn", (28, 28, 1), 128),
    Workload("LeNet-5, batch 128", "lenet5", (32, 32, 1), 128),
]

#: Timed on every dense conv; "taps" only where it applies (a small contraction), and the ops table
#: times it on depthwise convs against XLA's grouped conv; "onednn" where it is available.
DENSE_STRATEGIES = ("lax", "xla_cpu", "im2col", "taps", "onednn", "auto")


def strategy_rows(quick: bool = False, repeats: int = 5) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for strategy in DENSE_STRATEGIES:
        if strategy == "onednn" and not onednn.available():
            continue
        for w in MODELS[:1] if quick else MODELS:
            if strategy == "taps":  # not for every layer of a model
                continue
            with F.conv_strategy(strategy):  # the strategy is fixed when the step is traced, on its first call
                run, sync, _ = cnnjax_runner(w)
                rows.append({"workload": w.name, "framework": f"cnnjax, {strategy}", **timeit(run, sync, repeats=repeats)})
        for label, xs, ws, stride, pad, groups in CONVS[:1] if quick else CONVS:
            n = len(ws) - 2
            if groups != 1 or (strategy == "taps" and not is_small_dense(xs[-1], ws[:n], groups, (1,) * n)):
                continue
            x, k = jnp.asarray(rng.normal(size=xs), jnp.float32), jnp.asarray(rng.normal(size=ws), jnp.float32)
            # the kernel gradient only, as for a first layer in training (no gradient flows into the data;
            # the forward pass is not needed for it and is left out by XLA)
            conv = functools.partial(F.conv, stride=(stride,) * n, padding=pad, strategy=strategy)
            kernel_grad = _jax_fwd_bwd(lambda k, x: conv(x, k), k, x, argnums=(0,))
            rows.append({"workload": f"{label}: kernel grad", "framework": f"cnnjax, {strategy}",
                         **timeit(kernel_grad, jax_sync, repeats=repeats)})
            fb = _jax_fwd_bwd(conv, x, k)
            rows.append({"workload": f"{label}: fwd+bwd", "framework": f"cnnjax, {strategy}",
                         **timeit(fb, jax_sync, repeats=repeats)})
            fwd = jit_step(conv)
            rows.append({"workload": f"{label}: forward", "framework": f"cnnjax, {strategy}",
                         **timeit(lambda fwd=fwd, x=x, k=k: fwd(x, k), jax_sync, repeats=repeats)})
    return rows
