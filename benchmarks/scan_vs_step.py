"""Steps per dispatch: per-step ``jax.jit`` vs one epoch (40 steps) in a ``fori_loop``, rolled and unrolled.

Run: ``python -m benchmarks.scan_vs_step`` (medians of 5 repeats of 200 steps, after warm-up).
"""

from __future__ import annotations

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import models
from cnnjax.data import load_arrays
from cnnjax.train import TrainConfig
from cnnjax.train.optim import make_optimizer
from cnnjax.train.step import init_state, jit_step, make_train_step


def main(names=("mnist1d_cnn", "mnist1d_convbase"), repeats: int = 5) -> list[dict]:
    ds = load_arrays("mnist1d").normalized()
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    perm = jax.random.permutation(jax.random.key(0), len(ds.x_train))
    rows = []
    for name in names:
        cfg = TrainConfig(model=name)
        tx = make_optimizer(cfg, 6000)
        tdef, _, state = init_state(models.create(name), tx, 0)
        step = make_train_step(tdef, tx, 100, jit=False)
        variants = {"per-step jit": None, "fori_loop, rolled": 1, "fori_loop, unroll=8": 8, "fori_loop, unroll=40": 40}
        for label, unroll in variants.items():
            if unroll is None:
                jstep = jit_step(step, donate_argnums=0)

                def run(s, jstep=jstep):
                    for i in range(40):
                        s = jstep(s, x, y, perm, i)
                    return s
            else:
                run = jit_step(lambda s, u=unroll: jax.lax.fori_loop(0, 40, lambda i, st: step(st, x, y, perm, i), s, unroll=u))
            t = time.perf_counter()
            state = jax.block_until_ready(run(state))
            compile_s = time.perf_counter() - t
            rates = []
            for _ in range(repeats):
                t = time.perf_counter()
                for _ in range(5):
                    state = run(state)
                jax.block_until_ready(state)
                rates.append(200 / (time.perf_counter() - t))
            rows.append({"model": name, "variant": label, "median": float(np.median(rates)), "min": min(rates),
                         "max": max(rates), "first_call_s": compile_s})
            print(f"{name:18s} {label:22s} {np.median(rates):7.0f} steps/s (min {min(rates):.0f}, max {max(rates):.0f}); first call {compile_s:.1f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {jax.devices()}, jax {jax.__version__}")
    return rows


if __name__ == "__main__":
    main()
