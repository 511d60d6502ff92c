"""``fit(config)``: train a zoo model on a dataset, with progress, metrics, checkpoints and exact resume."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from cnnjax import models
from cnnjax.backends.cpu import keep_freed_memory
from cnnjax.data import STREAM_THRESHOLD_BYTES, GrainBatches, InMemoryBatches, builder, dataset_bytes, load_arrays
from cnnjax.data import augment as make_augment
from cnnjax.train import checkpoint
from cnnjax.train.config import TrainConfig
from cnnjax.train.metrics import MetricsWriter, plot_curves
from cnnjax.train.optim import make_optimizer
from cnnjax.train.parallel import data_mesh, is_main_process, main_first, main_only
from cnnjax.train import tasks
from cnnjax.train.step import init_state, make_eval_step, make_train_step, zero_metrics


class TrainingError(RuntimeError):
    """Training cannot go on: non-finite loss or parameters, a bad configuration."""


@dataclasses.dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]]
    params: Any
    model: nnx.Module

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1]


def _default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.model}-{cfg.dataset}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def evaluate(eval_step, params, rest, batches) -> dict[str, float]:
    """Mean loss per example, top-1 and top-5 accuracy over an iterable of ``(x, y)`` test batches.

    Accuracies are over what the task scores: examples, pixels (segmentation) or object cells (detection).
    """
    loss = correct = top5 = count = 0.0
    n = 0
    for x, y in batches:
        l, c, t, k = eval_step(params, rest, x, y)
        loss, correct, top5, count, n = loss + l, correct + c, top5 + t, count + k, n + len(y)
    count = max(float(count), 1.0)
    return {"loss": float(loss) / n, "acc": float(correct) / count, "top5": float(top5) / count}


def make_batches(cfg: TrainConfig, sharding: Any = None, batch_sharding: Any = None):
    """``(provider, model)``: the data on the device (with the task's targets), or
    streamed through Grain when ``cfg.stream`` says so (by default: datasets above ~1 GB; classification only).

    ``sharding`` places the in-memory data (replicated); ``batch_sharding`` places a streamed batch, each
    process reading only its own rows of it."""
    tasks.check_task(cfg.task, cfg.loss)
    main_first(lambda: builder(cfg.dataset, cfg.data_dir), "cnnjax-prepare-data")  # one process builds, on a shared disk
    stream = cfg.stream if cfg.stream is not None else dataset_bytes(cfg.dataset, cfg.data_dir) > STREAM_THRESHOLD_BYTES
    if stream:
        if cfg.task != "classify":
            raise TrainingError(f"task {cfg.task!r} needs the dataset in memory; streaming supports classification only")
        g = GrainBatches(cfg.dataset, cfg.batch_size, cfg.seed, cfg.data_dir, batch_sharding=batch_sharding,
                         sharding=sharding)
        return g, build_model(cfg, tuple(g.input_shape), g.num_classes)
    ds = load_arrays(cfg.dataset, data_dir=cfg.data_dir).normalized()
    if cfg.batch_size > len(ds.x_train):
        raise TrainingError(f"batch_size={cfg.batch_size} is larger than the training set ({len(ds.x_train)} examples)")
    model, y_train, y_test = task_data(cfg, ds)
    provider = InMemoryBatches(ds.x_train, y_train, ds.x_test, y_test, cfg.batch_size, cfg.seed, sharding)
    return provider, model


def task_data(cfg: TrainConfig, ds: Any) -> tuple[nnx.Module, np.ndarray, np.ndarray]:
    """``(model, y_train, y_test)``: the config's model and the task's targets for ``ds``, or a one-line error."""
    try:
        tasks.check_dataset(cfg.task, ds)
        model = build_model(cfg, ds.input_shape, ds.num_classes)
        return (model, *(tasks.targets(cfg.task, ds, split, model) for split in ("train", "test")))
    except ValueError as e:
        raise TrainingError(str(e)) from None


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> nnx.Module:
    """The config's model for the dataset's ``num_classes``, checked against the data's input shape and the
    task's output shape (a one-line error if it does not fit)."""
    options = dict(cfg.model_options)
    num_classes = tasks.model_classes(cfg.task, num_classes)
    model = models.create(cfg.model, num_classes=num_classes, in_channels=input_shape[-1], seed=cfg.seed, **options)
    try:
        out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, *input_shape), jnp.float32))
    except Exception as e:
        raise TrainingError(
            f"model {cfg.model!r} does not accept {cfg.dataset!r} inputs of shape {input_shape}: "
            f"{str(e).strip().splitlines()[0][:200]}"
        ) from None
    try:
        want = (2, *tasks.expected_output(cfg.task, model, input_shape, num_classes))
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if out.shape != want:
        hint = " (a 2-D model on 1-D data?)" if cfg.task == "classify" else f" for task {cfg.task!r}"
        raise TrainingError(
            f"model {cfg.model!r} does not fit {cfg.dataset!r} inputs of shape {input_shape}: a batch of 2 gives "
            f"outputs {out.shape} instead of {want}{hint}"
        )
    return model


def fit(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> FitResult:
    """Train ``cfg.model`` on ``cfg.dataset``; write metrics, curves and checkpoints to the run directory.

    Small data lives on the device and big data streams through Grain; either way each
    epoch's order is a function of ``(seed, epoch)``, so a resumed run replays exactly the
    batches the original would have seen, and the same config and seed give bit-identical
    parameters on one backend.

    Args:
      cfg: the configuration (see :class:`TrainConfig`).
      resume: continue from the latest checkpoint in ``cfg.run_dir``.
      progress: show a progress bar.

    Returns:
      A :class:`FitResult` with the run directory, the evaluation history and the trained model.
    """
    if jax.default_backend() == "cpu":
        keep_freed_memory()  # XLA:CPU's per-step temporaries stay in the process: cnnjax.backends.cpu.host_memory
    try:
        mesh = data_mesh(cfg.num_devices)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if cfg.batch_size % mesh.size:
        raise TrainingError(f"batch_size={cfg.batch_size} must be divisible by the number of devices ({mesh.size})")
    replicated, by_batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    batches, model = make_batches(cfg, replicated, by_batch if mesh.size > 1 else None)
    objective = tasks.objective(cfg, model)
    steps_per_epoch = batches.steps_per_epoch
    total = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    tx = make_optimizer(cfg, total)
    train_def, eval_def, state = init_state(model, tx, cfg.seed)
    train_step = make_train_step(
        train_def, tx, cfg.batch_size, cfg.label_smoothing, augment=make_augment(cfg.augment) if cfg.augment else None,
        batch_sharding=by_batch if mesh.size > 1 else None, compute_dtype=cfg.compute_dtype, objective=objective,
    )
    eval_step = make_eval_step(eval_def, cfg.compute_dtype, objective=objective)

    if jax.process_count() > 1 and not cfg.run_dir:
        raise TrainingError("a multi-process run needs run_dir (--run-dir): one folder every process can reach")
    main = is_main_process()  # the only process that writes metrics, plots and the config
    run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    if not resume:
        main_only(lambda: checkpoint.clear(run_dir), "cnnjax-clear-checkpoints")
    mgr = checkpoint.manager(run_dir, cfg.keep_checkpoints)
    writer = MetricsWriter(run_dir, enabled=main)
    history: list[dict[str, Any]] = []
    if resume:
        state, meta = checkpoint.restore(mgr, state, str(run_dir))
        history = meta.get("history", [])
        writer.rewrite(history)
    else:
        if main:
            cfg.save(run_dir / "config.json")
        writer.rewrite([])

    state = jax.device_put(state, replicated)
    step = int(state["step"])
    last_saved = step
    bar = tqdm(total=total, initial=step, disable=not (progress and main), desc=f"{cfg.model} on {cfg.dataset}", unit="step")
    t_start, examples = time.perf_counter(), 0
    try:
        while step < total:
            epoch, i0 = divmod(step, steps_per_epoch)
            if i0 == 0:
                state["acc"] = zero_metrics()  # mid-epoch resumes keep the restored accumulators
            i_end = min(steps_per_epoch, i0 + total - step)
            for i, args in enumerate(batches.epoch(epoch, i0, i_end), start=i0):
                state = train_step(state, *args)
                step += 1
                if step % cfg.checkpoint_every == 0 and i + 1 < i_end:
                    _check_finite(state)
                    checkpoint.save(mgr, state, {"history": history})
                    last_saved = step
            examples += (i_end - i0) * cfg.batch_size
            bar.update(i_end - i0)
            epoch_done = i_end == steps_per_epoch
            if (epoch_done and (epoch + 1) % cfg.eval_every == 0) or step >= total:
                _check_finite(state)
                acc = jax.device_get(state["acc"])
                test = evaluate(eval_step, state["params"], state["rest"], batches.test_batches())
                elapsed = time.perf_counter() - t_start
                row = {"step": step, "epoch": epoch + 1, "train_loss": float(acc["loss"]) / max(int(acc["seen"]), 1),
                       "train_acc": float(acc["correct"]) / max(int(acc["count"]), 1), "test_loss": test["loss"],
                       "test_acc": test["acc"], "test_top5": test["top5"], "examples_per_s": examples / max(elapsed, 1e-9),
                       "wall_s": elapsed}
                history.append(row)
                writer.append(row)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
            if step % cfg.checkpoint_every == 0 and step < total and last_saved != step:
                # after the epoch's evaluation, so a resume from here does not lose that row
                _check_finite(state)
                checkpoint.save(mgr, state, {"history": history})
                last_saved = step
        if last_saved != step or step == 0:
            checkpoint.save(mgr, state, {"history": history})
    finally:
        bar.close()
        writer.close()
    if history and main:
        plot_curves(history, run_dir / "curves.png")
    nnx.update(model, state["params"], state["rest"])
    model.eval()
    return FitResult(run_dir, history, state["params"], model)


def _check_finite(state: dict) -> None:
    bad = int(state["acc"]["first_bad_step"])
    finite = all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state["params"]))
    if bad >= 0 or not finite:
        where = f"at step {bad + 1}" if bad >= 0 else f"by step {int(state['step'])}"
        raise TrainingError(
            f"the loss or the parameters became NaN/inf {where}; stopping. The last good checkpoint is kept. "
            f"Try a lower --lr, --grad-clip, or a warmup schedule."
        )
