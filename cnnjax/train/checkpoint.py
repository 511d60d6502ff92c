"""Checkpoints with orbax: atomic saves, keep the last K, clear errors on bad or foreign checkpoints."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored: missing, truncated, or from another model."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped for an older, intact one."""


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
    try:
        mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_tree(state)), meta=ocp.args.JsonSave(extra)))
        mgr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 (a full disk, a lost mount, permissions: all end the run the same way)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kept = mgr.latest_step()
        raise CheckpointError(
            f"could not save the checkpoint at step {step} in {mgr.directory} ({type(e).__name__}: {first[:200]}); "
            f"stopping. " + (f"The last good checkpoint (step {kept}) is kept: free space and resume with --resume."
                             if kept is not None else "No earlier checkpoint exists.")
        ) from None


def restore(mgr: ocp.CheckpointManager, template: dict, where: str, *, set_aside: bool = False) -> tuple[dict, dict]:
    """Restore the newest intact checkpoint into the structure of ``template``; ``(state, meta)``.

    A checkpoint that cannot be read (truncated or missing files) is skipped with one warning naming it and the
    step used instead; nothing is deleted. ``set_aside=True`` (a resume, which will save those steps again)
    moves the damaged ones to ``checkpoints-damaged/`` in the run directory. A checkpoint that reads but does
    not fit ``template`` (another model or optimizer) is an error, not skipped.
    """
    steps = sorted(mgr.all_steps(), reverse=True)
    if not steps:
        raise CheckpointError(f"no checkpoint found in {where}/checkpoints; start over without --resume")
    target = jax.tree.map(np.asarray, _to_tree(template))
    damaged: list[tuple[int, str]] = []
    for step in steps:
        try:
            with _stderr_held_back():
                out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise many kinds for unreadable files)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            damaged.append((step, f"{type(e).__name__}: {first[:200]}"))
            continue
        _check_fits(target, out["state"], step, where)
        break
    else:
        raise CheckpointError(
            f"no intact checkpoint in {where}/checkpoints (steps {', '.join(str(s) for s, _ in damaged)} are truncated or "
            f"corrupt: {damaged[0][1]}); start the run over without --resume, into a new --run-dir"
        )
    if damaged:
        skipped = ", ".join(str(s) for s, _ in damaged)
        moved = ""
        if set_aside:
            aside = Path(mgr.directory).parent / "checkpoints-damaged"
            aside.mkdir(exist_ok=True)
            for s, _ in damaged:
                shutil.move(str(Path(mgr.directory) / str(s)), str(aside / f"{s}-{time.strftime('%Y%m%d-%H%M%S')}"))
            mgr.reload()
            moved = f"; moved to {aside}"
        warnings.warn(f"checkpoint step {skipped} in {where} cannot be restored ({damaged[0][1]}); using step {step} "
                      f"instead{moved}", CheckpointWarning, stacklevel=2)
    tree = out["state"]
    state = dict(template)
    nnx.replace_by_pure_dict(state["params"], tree["params"])
    nnx.replace_by_pure_dict(state["rest"], tree["rest"])
    for key in ("opt_state", "step", "seed", "acc"):  # plain arrays: cast back to the template's dtypes
        state[key] = jax.tree.map(lambda t, v: jax.numpy.asarray(v, dtype=t.dtype), template[key], tree[key])
    return state, dict(out["meta"])


@contextlib.contextmanager
def _stderr_held_back():
    """Hold back what is written to file descriptor 2 meanwhile: replayed if the body succeeds, dropped if it
    raises. A failed orbax restore leaves tensorstore reads in flight whose callbacks find orbax's event loop
    closed, and asyncio tasks whose exceptions nobody retrieved; each prints a traceback (from a native thread,
    or when the task is collected) that says nothing the error does not."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            time.sleep(0.2)  # the reads still in flight finish into the held-back output
            gc.collect()  # and the failed restore's asyncio tasks log "exception never retrieved" there, not later
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)  # reached only when the body succeeded
        os.write(2, held.read())


def _check_fits(target: Any, tree: Any, step: int, where: str) -> None:
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
