"""Ensembles and sweeps in one compiled program: K members vmapped over seeds and hyperparameters."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx

from cnnjax.train.config import TrainConfig
from cnnjax.train.loop import train
from cnnjax.train.members import member_grid
from cnnjax.train.step import finite_params, jit_step


@dataclasses.dataclass
class EnsembleResult:
    run_dir: Path
    members: list[dict[str, Any]]  # one row per member: seed, lr, weight_decay, final metrics, status
    summary: dict[str, Any]  # mean and std over the members that finished
    params: Any  # stacked over the member axis
    rest: Any  # the other state (batch-norm statistics), stacked likewise
    model_def: Any  # the model's graph in eval mode
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per epoch, one value per member

    def member_model(self, m: int) -> nnx.Module:
        """Member ``m`` as an ordinary model in eval mode (for metrics, plots, equivariance tests)."""
        take = lambda tree: jax.tree.map(lambda a: a[m], tree)  # noqa: E731
        return nnx.merge(self.model_def, take(self.params), take(self.rest))

    def predict(self, x: jax.Array) -> jax.Array:
        """Every member's logits for inputs ``x`` (normalized like the training data): ``(members, N, classes)``."""
        return self._apply(self.params, self.rest, x)

    @functools.cached_property
    def _apply(self):  # one compiled program per input shape, reused across calls
        return jit_step(jax.vmap(lambda p, r, x: nnx.merge(self.model_def, p, r)(x), in_axes=(0, 0, None)))


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    out: dict[str, Any] = {"members": len(rows), "finished": len(ok)}
    for key in ("test_acc", "test_loss", "train_acc"):
        vals = np.array([r[key] for r in ok], float)
        out[key] = {"mean": float(vals.mean()) if len(vals) else float("nan"),
                    "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


def fit_ensemble(
    cfg: TrainConfig,
    seeds: Sequence[int],
    *,
    lr: Sequence[float] | None = None,
    weight_decay: Sequence[float] | None = None,
    progress: bool = True,
    resume: bool = False,
    model: Any = None,
) -> EnsembleResult:
    """Train every combination of ``seeds`` x ``lr`` x ``weight_decay`` as one vmapped program.

    Member ``(seed, lr, wd)`` is the run ``fit`` would do with that seed and those values
    (same initialisation, data order and augmentation), up to float reordering: both run the
    same loop (:func:`cnnjax.train.loop.train`), so every option of the config works here too
    (``num_devices``, ``stream``, ``eval_every``, ``checkpoint_every``, tasks). Batch-norm
    statistics, optimizer state and metrics are per member. A member whose loss turns
    NaN/inf is reported as diverged at its step; the others carry on, and training stops
    once every member has diverged.

    Writes ``members.csv`` (one row per member), ``summary.json`` (mean and std over the
    finished members) and ``history.jsonl`` (each evaluation, one value per member).
    ``resume=True`` continues from the latest checkpoint in ``cfg.run_dir`` and ends with
    the parameters the uninterrupted run would have.

    Args:
      cfg: the shared configuration (its ``seed``, ``lr`` and ``weight_decay`` are the defaults).
      seeds: member seeds.
      lr, weight_decay: values to sweep (default: the config's).
      progress: show a progress bar.
      resume: continue the ensemble in ``cfg.run_dir`` (same members) from its latest checkpoint.
      model: a function building your own network from ``rngs`` instead of the zoo's ``cfg.model``
        (see :func:`cnnjax.train.fit`); each member calls it with its own seed.

    Example:
      >>> r = fit_ensemble(TrainConfig(model="logistic", steps=40), seeds=[0, 1], lr=[0.01, 0.1], progress=False)  # doctest: +SKIP
      >>> len(r.members)  # doctest: +SKIP
      4
    """
    grid = member_grid(cfg, seeds, lr, weight_decay)
    run = train(cfg, grid, resume=resume, progress=progress, model=model)
    state, last = run.state, run.history[-1]  # the last row evaluates the final parameters
    acc = jax.device_get(state["acc"])
    finite = finite_params(state["params"], (len(grid),))
    rows = []
    for m, (seed, lr_, wd_) in enumerate(grid):
        bad = int(acc["first_bad_step"][m])
        status = "ok" if bad < 0 and finite[m] else (f"diverged at step {bad + 1}" if bad >= 0 else "diverged")
        rows.append({"member": m, "seed": seed, "lr": lr_, "weight_decay": wd_,
                     **{key: last[key][m] for key in ("test_acc", "test_loss", "test_top5", "train_acc")}, "status": status})
    steps = last["step"] - run.start_step
    summary = {**_summary(rows), "wall_s": run.wall_s, "steps": last["step"],
               "member_steps_per_s": len(grid) * steps / max(run.wall_s, 1e-9)}
    with (run.run_dir / "members.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (run.run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in run.history))
    return EnsembleResult(run.run_dir, rows, summary, state["params"], state["rest"], run.eval_def, run.history)
