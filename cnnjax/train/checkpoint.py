"""Checkpoints with orbax: atomic saves, keep the last K, clear errors on bad or foreign checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored: missing, truncated, or from another model."""


def _to_tree(state: dict) -> dict:
    return {"params": nnx.to_pure_dict(state["params"]), "rest": nnx.to_pure_dict(state["rest"]),
            "opt_state": state["opt_state"], "step": state["step"], "seed": state["seed"], "acc": state["acc"]}


def clear(run_dir: Path) -> None:
    """Remove a run directory's checkpoints: a fresh (not resumed) run into an existing folder starts it over.

    Orbax would otherwise skip saving steps the old run already saved, leaving its parameters behind.
    """
    shutil.rmtree(Path(run_dir) / "checkpoints", ignore_errors=True)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a complete checkpoint (orbax names one by its step once it is fully written)."""
    folder = Path(run_dir) / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(run_dir).absolute() / "checkpoints", options=options)


def save(mgr: ocp.CheckpointManager, state: dict, extra: dict[str, Any], step: int | None = None) -> None:
    """Save the training state and JSON metadata (the metric history) as one checkpoint at ``step`` (default
    ``state['step']``; an ensemble's state has one step counter per member).

    Orbax writes into a temporary directory and renames it when complete, so a run killed
    mid-save leaves no checkpoint that loads as valid.
    """
    step = int(state["step"]) if step is None else step
    mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)), meta=ocp.args.JsonSave(extra)))
    mgr.wait_until_finished()


def restore(mgr: ocp.CheckpointManager, template: dict, where: str) -> tuple[dict, dict]:
    """Restore the latest checkpoint into the structure of ``template``; ``(state, meta)``."""
    step = mgr.latest_step()
    if step is None:
        raise CheckpointError(f"no checkpoint found in {where}/checkpoints")
    target = jax.tree.map(np.asarray, _to_tree(template))
    try:
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"the checkpoint at step {step} in {where} could not be restored: it is truncated, corrupt, or from a "
            f"different model/optimizer than this run's config ({type(e).__name__}: {first[:300]})"
        ) from None
    tree = out["state"]
    want, got = jax.tree_util.tree_flatten_with_path(target)[0], jax.tree_util.tree_flatten_with_path(tree)[0]
    mismatch = [
        jax.tree_util.keystr(p) for (p, a), (q, b) in zip(want, got) if p != q or np.shape(a) != np.shape(b)
    ]
    if len(want) != len(got) or mismatch:
        detail = mismatch[0] if mismatch else f"{len(got)} arrays saved, {len(want)} expected"
        raise CheckpointError(
            f"the checkpoint at step {step} in {where} is from a different model or optimizer than this run's "
            f"config: its parameters do not match (first difference: {detail})"
        )
    state = dict(template)
    nnx.replace_by_pure_dict(state["params"], tree["params"])
    nnx.replace_by_pure_dict(state["rest"], tree["rest"])
    for key in ("opt_state", "step", "seed", "acc"):  # plain arrays: cast back to the template's dtypes
        state[key] = jax.tree.map(lambda t, v: jax.numpy.asarray(v, dtype=t.dtype), template[key], tree[key])
    return state, dict(out["meta"])
