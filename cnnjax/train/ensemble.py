"""Ensembles and sweeps in one compiled program: K members vmapped over seeds and hyperparameters."""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
import json
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from cnnjax import models
from cnnjax.data import augment as make_augment
from cnnjax.data import load_arrays
from cnnjax.data.stream import epoch_permutation
from cnnjax.train import checkpoint, tasks
from cnnjax.train.config import TrainConfig
from cnnjax.train.loop import TrainingError, task_data
from cnnjax.train.optim import make_injectable_optimizer
from cnnjax.train.step import jit_step, make_eval_step, make_train_step, new_state, zero_metrics


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


def member_grid(cfg: TrainConfig, seeds: Sequence[int], lr: Sequence[float] | None = None,
                weight_decay: Sequence[float] | None = None) -> list[tuple[int, float, float]]:
    """Every ``(seed, lr, weight_decay)`` member of an ensemble, in order; ``lr``/``weight_decay`` default to the config's."""
    lrs = list(lr) if lr is not None else [cfg.lr]
    wds = list(weight_decay) if weight_decay is not None else [cfg.weight_decay]
    return list(itertools.product(list(seeds), lrs, wds))


def member_records(grid: Sequence[tuple[int, float, float]]) -> list[dict[str, Any]]:
    """The members as ``members.json`` stores them, which a resume (or a sweep's resume check) compares."""
    return [{"seed": s, "lr": a, "weight_decay": w} for s, a, w in grid]


def fit_ensemble(
    cfg: TrainConfig,
    seeds: Sequence[int],
    *,
    lr: Sequence[float] | None = None,
    weight_decay: Sequence[float] | None = None,
    progress: bool = True,
    resume: bool = False,
) -> EnsembleResult:
    """Train every combination of ``seeds`` x ``lr`` x ``weight_decay`` as one vmapped program.

    Member ``(seed, lr, wd)`` is the run ``fit`` would do with that seed and those values
    (same initialisation, data order and augmentation), up to float reordering. Batch-norm
    statistics, optimizer state and metrics are per member. A member whose loss turns
    NaN/inf is reported as diverged at its step; the others carry on.

    Writes ``members.csv`` (one row per member), ``summary.json`` (mean and std over the
    finished members) and ``history.jsonl`` (per-epoch test accuracy of every member).
    The stacked state is checkpointed at the first epoch end after every ``cfg.checkpoint_every``
    steps and at the end; ``resume=True`` continues from the latest checkpoint in ``cfg.run_dir``
    and ends with the parameters the uninterrupted run would have.

    Args:
      cfg: the shared configuration (its ``seed``, ``lr`` and ``weight_decay`` are the defaults).
      seeds: member seeds.
      lr, weight_decay: values to sweep (default: the config's).
      progress: show a progress bar.
      resume: continue the ensemble in ``cfg.run_dir`` (same members) from its latest checkpoint.

    Example:
      >>> r = fit_ensemble(TrainConfig(model="logistic", steps=40), seeds=[0, 1], lr=[0.01, 0.1], progress=False)  # doctest: +SKIP
      >>> len(r.members)  # doctest: +SKIP
      4
    """
    if jax.process_count() > 1:
        raise TrainingError("fit_ensemble runs in one process (its members share the local devices); "
                            f"this is a {jax.process_count()}-process run")
    if resume and not cfg.run_dir:
        raise TrainingError("fit_ensemble(resume=True) needs cfg.run_dir: the folder of the ensemble to continue")
    grid = member_grid(cfg, seeds, lr, weight_decay)
    if not grid:
        raise TrainingError("fit_ensemble: no members (empty seeds or sweep)")
    k = len(grid)
    member_seeds = jnp.array([g[0] for g in grid], jnp.int32)
    member_lr = jnp.array([g[1] for g in grid], jnp.float32)
    member_wd = jnp.array([g[2] for g in grid], jnp.float32)

    ds = load_arrays(cfg.dataset, data_dir=cfg.data_dir).normalized()
    probe, y_train, y_test = task_data(cfg, ds)  # one-line errors if the model or task does not fit the data
    objective = tasks.objective(cfg, probe)
    num_classes = tasks.model_classes(cfg.task, ds.num_classes)
    n = len(ds.x_train)
    steps_per_epoch = n // cfg.batch_size
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    tx = make_injectable_optimizer(cfg, total, decay=any(w != 0 for _, _, w in grid))

    def create(key):
        return models.create(cfg.model, num_classes=num_classes, in_channels=ds.input_shape[-1],
                             rngs=nnx.Rngs(key), **cfg.model_options)

    template = nnx.eval_shape(lambda: create(jax.random.key(0)))
    template.train()
    train_def = nnx.split(template, nnx.Param, ...)[0]
    template.eval()
    eval_def = nnx.split(template, nnx.Param, ...)[0]

    def init_member(seed, lr_, wd_):
        model = create(jax.random.key(seed))
        model.train()
        _, params, rest = nnx.split(model, nnx.Param, ...)
        state = new_state(params, rest, tx, seed)
        state["opt_state"].hyperparams["learning_rate"] = lr_
        state["opt_state"].hyperparams["weight_decay"] = wd_
        return state

    state = jax.jit(jax.vmap(init_member))(member_seeds, member_lr, member_wd)
    step = make_train_step(train_def, tx, cfg.batch_size, cfg.label_smoothing,
                           augment=make_augment(cfg.augment) if cfg.augment else None,
                           compute_dtype=cfg.compute_dtype, objective=objective, jit=False)
    vstep = jit_step(jax.vmap(step, in_axes=(0, None, None, 0, None)), donate_argnums=0)
    veval = jit_step(jax.vmap(make_eval_step(eval_def, cfg.compute_dtype, jit=False, objective=objective), in_axes=(0, 0, None, None)))
    perms = jax.jit(jax.vmap(epoch_permutation, in_axes=(0, None, None)), static_argnums=2)

    run_dir = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / f"{cfg.model}-{cfg.dataset}-ensemble{k}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    members = member_records(grid)
    if not resume:
        checkpoint.clear(run_dir)
    mgr = checkpoint.manager(run_dir, cfg.keep_checkpoints)
    history, done, evaluated = [], 0, None
    if resume:
        saved = json.loads((run_dir / "members.json").read_text()) if (run_dir / "members.json").exists() else None
        if saved != members:
            raise TrainingError(f"cannot resume {run_dir}: its members are {saved}, this call asks for {members}")
        state, meta = checkpoint.restore(mgr, state, str(run_dir))
        history, done = meta["history"], meta["done"]
    else:
        cfg.save(run_dir / "config.json")
        (run_dir / "members.json").write_text(json.dumps(members))
    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in (ds.x_train, y_train, ds.x_test, y_test))

    last_saved = start = done
    bar = tqdm(total=total, initial=done, disable=not progress, desc=f"{k} x {cfg.model} on {cfg.dataset}", unit="step")
    t0 = time.perf_counter()
    while done < total:
        epoch = done // steps_per_epoch
        p = perms(member_seeds, epoch, n)
        fresh = jax.vmap(lambda _: zero_metrics())(member_seeds)
        state["acc"] = {**fresh, "first_bad_step": state["acc"]["first_bad_step"]}  # divergence is remembered
        steps = min(steps_per_epoch, total - done)
        for i in range(steps):
            state = vstep(state, x_train, y_train, p, i)
        done += steps
        bar.update(steps)
        evaluated = [np.asarray(v) for v in veval(state["params"], state["rest"], x_test, y_test)]
        seen = np.maximum(np.asarray(state["acc"]["seen"]), 1)
        history.append({"step": done, "epoch": epoch + 1, "test_acc": (evaluated[1] / np.maximum(evaluated[3], 1)).tolist(),
                        "test_loss": (evaluated[0] / len(ds.x_test)).tolist(),
                        "train_loss": (np.asarray(state["acc"]["loss"]) / seen).tolist()})
        if done - last_saved >= cfg.checkpoint_every or done >= total:  # at epoch ends: the accumulators restart there
            checkpoint.save(mgr, state, {"history": history, "done": done}, step=done)
            last_saved = done
    bar.close()
    wall = time.perf_counter() - t0

    acc = jax.device_get(state["acc"])
    if evaluated is None:  # no steps were asked for: evaluate the initial members
        evaluated = [np.asarray(v) for v in veval(state["params"], state["rest"], x_test, y_test)]
    loss, correct, top5, count = evaluated  # the last epoch's evaluation is of the final parameters
    count = np.maximum(count, 1)
    rows = []
    for m, (seed, lr_, wd_) in enumerate(grid):
        bad = int(acc["first_bad_step"][m])
        finite = all(bool(np.isfinite(np.asarray(leaf[m])).all()) for leaf in jax.tree.leaves(state["params"]))
        status = "ok" if bad < 0 and finite else (f"diverged at step {bad + 1}" if bad >= 0 else "diverged")
        rows.append({"member": m, "seed": seed, "lr": lr_, "weight_decay": wd_,
                     "test_acc": float(correct[m]) / count[m], "test_loss": float(loss[m]) / len(ds.x_test),
                     "test_top5": float(top5[m]) / count[m],
                     "train_acc": float(acc["correct"][m]) / max(int(acc["count"][m]), 1), "status": status})
    summary = {**_summary(rows), "wall_s": wall, "steps": total, "member_steps_per_s": k * (total - start) / max(wall, 1e-9)}
    with (run_dir / "members.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    return EnsembleResult(run_dir, rows, summary, state["params"], state["rest"], eval_def, history)
