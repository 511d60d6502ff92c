"""How long a zoo model takes to build: ``models.create`` and ``nnx.eval_shape`` in cnnjax, the twin's
constructor in PyTorch where one exists (``benchmarks/torch_models.py``).

Each build runs in a fresh process after the imports, as a user's script or notebook meets it: compiled
programs cached by an earlier build in the same process would hide the cost.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.harness import in_fresh_process

MODELS = ("resnet20", "resnet18", "resnet50", "densenet121", "densenet201", "inception_v3", "vgg16")
KINDS = {"create": "models.create", "eval_shape": "nnx.eval_shape(models.create)", "torch": "torch constructor"}


def _build_once(name: str, kind: str) -> float | None:
    if kind == "torch":
        try:
            from benchmarks import torch_models
        except ImportError:
            return None
        if name not in torch_models.BUILDERS:
            return None
        start = time.perf_counter()
        torch_models.BUILDERS[name]()
        return time.perf_counter() - start
    import jax
    from flax import nnx

    from cnnjax import models

    start = time.perf_counter()
    if kind == "eval_shape":
        nnx.eval_shape(lambda: models.create(name))
    else:
        jax.block_until_ready(nnx.state(models.create(name)))
    return time.perf_counter() - start


def build_rows(quick: bool = False, repeats: int = 3) -> list[dict]:
    """One row per (model, kind): the median, min and max seconds over ``repeats`` fresh processes."""
    rows = []
    for name in MODELS[:1] if quick else MODELS:
        for kind in KINDS:
            times = []
            for _ in range(1 if quick else repeats):
                t = in_fresh_process(_build_once, name, kind)
                if t is None:
                    break
                times.append(t)
            if times:
                rows.append({"workload": name, "framework": KINDS[kind], "median_s": statistics.median(times),
                             "min_s": min(times), "max_s": max(times)})
        print(f"  build {name}: " + ", ".join(f"{r['framework']} {r['median_s']:.2f} s" for r in rows
                                              if r["workload"] == name), flush=True)
    return rows


def build_table(rows: list[dict]) -> str:
    """Seconds to build, one line per model and one column per kind."""
    kinds = list(dict.fromkeys(r["framework"] for r in rows))
    lines = ["| model | " + " | ".join(f"{k}, s median (min-max)" for k in kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name in dict.fromkeys(r["workload"] for r in rows):
        cell = {r["framework"]: f"{r['median_s']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f})" for r in rows
                if r["workload"] == name}
        lines.append(f"| {name} | " + " | ".join(cell.get(k, "—") for k in kinds) + " |")
    return "\n".join(lines)
