"""``fit(config)``: train a zoo model on a dataset, with progress, metrics, checkpoints and exact resume."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

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
from cnnjax.train.members import Member, MemberBatches, init_members, member_records
from cnnjax.train.metrics import MetricsWriter, plot_curves
from cnnjax.train.optim import make_injectable_optimizer, make_optimizer
from cnnjax.train.parallel import data_mesh, is_main_process, main_first, main_only
from cnnjax.train import tasks
from cnnjax.train.step import eval_graph_def, finite_params, init_state, jit_step, make_eval_step, make_train_step


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


def make_batches(cfg: TrainConfig, sharding: Any = None, batch_sharding: Any = None,
                 build: Callable[..., nnx.Module] | None = None):
    """``(provider, model)``: the data on the device (with the task's targets), or
    streamed through Grain when ``cfg.stream`` says so (by default: datasets above ~1 GB; classification only).

    ``sharding`` places the in-memory data (replicated); ``batch_sharding`` places a streamed batch, each
    process reading only its own rows of it. ``build`` (see :func:`model_builder`) replaces the zoo's
    ``cfg.model``."""
    tasks.check_task(cfg.task, cfg.loss)
    main_first(lambda: builder(cfg.dataset, cfg.data_dir), "cnnjax-prepare-data")  # one process builds, on a shared disk
    stream = cfg.stream if cfg.stream is not None else dataset_bytes(cfg.dataset, cfg.data_dir) > STREAM_THRESHOLD_BYTES
    if stream:
        if cfg.task != "classify":
            raise TrainingError(f"task {cfg.task!r} needs the dataset in memory; streaming supports classification only")
        g = GrainBatches(cfg.dataset, cfg.batch_size, cfg.seed, cfg.data_dir, batch_sharding=batch_sharding,
                         sharding=sharding)
        return g, build_model(cfg, tuple(g.input_shape), g.num_classes, build)
    ds = load_arrays(cfg.dataset, data_dir=cfg.data_dir).normalized()
    if cfg.batch_size > len(ds.x_train):
        raise TrainingError(f"batch_size={cfg.batch_size} is larger than the training set ({len(ds.x_train)} examples)")
    model, y_train, y_test = task_data(cfg, ds, build)
    provider = InMemoryBatches(ds.x_train, y_train, ds.x_test, y_test, cfg.batch_size, cfg.seed, sharding,
                               num_classes=ds.num_classes)
    return provider, model


def task_data(cfg: TrainConfig, ds: Any, build: Callable[..., nnx.Module] | None = None
              ) -> tuple[nnx.Module, np.ndarray, np.ndarray]:
    """``(model, y_train, y_test)``: the config's model and the task's targets for ``ds``, or a one-line error."""
    try:
        tasks.check_dataset(cfg.task, ds)
        model = build_model(cfg, ds.input_shape, ds.num_classes, build)
        return (model, *(tasks.targets(cfg.task, ds, split, model) for split in ("train", "test")))
    except ValueError as e:
        raise TrainingError(str(e)) from None


def build_model(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
                build: Callable[..., nnx.Module] | None = None) -> nnx.Module:
    """The config's model (or ``build``'s) for the dataset's ``num_classes``, checked against the data's input
    shape and the task's output shape (a one-line error if it does not fit)."""
    num_classes = tasks.model_classes(cfg.task, num_classes)
    model = create_model(cfg, input_shape, num_classes, build, seed=cfg.seed)

    def others() -> str:
        if build is not None:
            return "the model you passed must take (N, *spatial, C) inputs, channels last, and return (N, classes) logits"
        return f"models that do: {', '.join(models_that_fit(cfg, input_shape, num_classes))}"
    try:
        out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, *input_shape), jnp.float32))
    except Exception as e:
        raise TrainingError(
            f"model {cfg.model!r} does not accept {cfg.dataset!r} inputs of shape {input_shape} "
            f"({str(e).strip().splitlines()[0][:160]}); {others()}"
        ) from None
    try:
        want = (2, *tasks.expected_output(cfg.task, model, input_shape, num_classes))
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if out.shape != want:
        hint = " (a 2-D model on 1-D data?)" if cfg.task == "classify" else f" for task {cfg.task!r}"
        raise TrainingError(
            f"model {cfg.model!r} does not fit {cfg.dataset!r} inputs of shape {input_shape}: a batch of 2 gives "
            f"outputs {out.shape} instead of {want}{hint}; {others()}"
        )
    return model


def models_that_fit(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int, budget_s: float = 5.0) -> list[str]:
    """The zoo models (with their default options) whose outputs fit the task for inputs of ``input_shape``:
    each is built and run abstractly (``nnx.eval_shape``), so nothing is computed. The search stops after
    ``budget_s`` seconds (deep models take a second each to trace), and the list then says so."""
    fit_ = []
    x = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
    # the deep variants (resnet152, densenet201: the larger number in the name) last, as they take longest
    names = sorted(models.list_models(), key=lambda n: (max(map(int, re.findall(r"\d+", n)), default=0), n))
    deadline = time.perf_counter() + budget_s
    for checked, name in enumerate(names):
        if time.perf_counter() > deadline:
            fit_.append(f"... (stopped after checking {checked} of {len(names)} models)")
            break
        try:
            model = nnx.eval_shape(lambda name=name: models.create(name, num_classes=num_classes, in_channels=input_shape[-1]))
            want = (2, *tasks.expected_output(cfg.task, model, input_shape, num_classes))
            out = nnx.eval_shape(lambda m, x: m(x), model, x)
        except Exception:  # noqa: BLE001 (any failure means: does not fit)
            continue
        if out.shape == want:
            fit_.append(name)
    return fit_ or ["none in the zoo"]


def create_model(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
                 build: Callable[..., nnx.Module] | None = None, **kwargs: Any) -> nnx.Module:
    """``models.create`` (or ``build``) for the config's model, options and input channels, with the model's
    ``num_classes`` and ``seed``/``rngs`` in ``kwargs``; no checks (see :func:`build_model`)."""
    make = build if build is not None else functools.partial(models.create, cfg.model)
    return make(num_classes=num_classes, in_channels=input_shape[-1], **cfg.model_options, **kwargs)


def model_builder(model: Any, *, ensemble: bool = False) -> tuple[str, Callable[..., nnx.Module]]:
    """``(label, build)`` for a model given to :func:`fit` as an ``nnx.Module`` or a builder function.

    ``build(num_classes=, in_channels=, seed= | rngs=, **options)`` is what :func:`create_model` calls:
    an instance is returned as it is (trained from its current parameters); a function gets
    ``rngs=nnx.Rngs(seed)`` and those of ``num_classes``/``in_channels``/options it declares.
    """
    if isinstance(model, nnx.Module):
        if ensemble:
            raise TrainingError(f"fit_ensemble: got a {type(model).__name__} instance, but every member needs its "
                                "own initialisation; pass a builder instead, e.g. model=lambda rngs: MyNet(rngs=rngs)")

        def build_instance(*, num_classes: int, in_channels: int, seed: int | None = None,
                           rngs: nnx.Rngs | None = None, **options: Any) -> nnx.Module:
            if options:
                raise TypeError(f"fit: model_options {sorted(options)} cannot apply to a {type(model).__name__} that "
                                "is already built; pass a builder to have them passed to it")
            return model
        return type(model).__name__, build_instance
    if not callable(model) or isinstance(model, type) and not issubclass(model, nnx.Module):
        raise TypeError(f"fit: model must be an nnx.Module, a function returning one, or None (the config's "
                        f"registered name), got {type(model).__name__}")
    # a class's own __init__: nnx's metaclass hides it behind (*args, **kwargs)
    params = dict(inspect.signature(model.__init__ if isinstance(model, type) else model).parameters)
    params.pop("self", None)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "rngs" not in params and not takes_all:
        raise TypeError(f"fit: the model builder {getattr(model, '__name__', model)!r} must take rngs "
                        "(an nnx.Rngs: each seed and ensemble member initialises from its own), e.g. "
                        "lambda rngs: MyNet(rngs=rngs)")

    def build_function(*, seed: int | None = None, rngs: nnx.Rngs | None = None, **kwargs: Any) -> nnx.Module:
        unknown = sorted(k for k in kwargs if not takes_all and k not in params and k not in ("num_classes", "in_channels"))
        if unknown:
            raise TypeError(f"fit: the model builder {getattr(model, '__name__', model)!r} takes no {', '.join(unknown)} "
                            "(from the config's model_options)")
        kwargs = {k: v for k, v in kwargs.items() if takes_all or k in params}
        return model(rngs=rngs if rngs is not None else nnx.Rngs(seed), **kwargs)
    return getattr(model, "__name__", type(model).__name__).replace("<lambda>", "model"), build_function


def fit(cfg: TrainConfig, *, model: Any = None, resume: bool = False, progress: bool = True) -> FitResult:
    """Train ``cfg.model`` (or ``model``) on ``cfg.dataset``; write metrics, curves and checkpoints to the run directory.

    Small data lives on the device and big data streams through Grain; either way each
    epoch's order is a function of ``(seed, epoch)``, so a resumed run replays exactly the
    batches the original would have seen, and the same config and seed give bit-identical
    parameters on one backend.

    Args:
      cfg: the configuration (see :class:`TrainConfig`).
      model: your own network instead of the zoo's ``cfg.model``, without registering it: an
        ``nnx.Module`` (trained in place from its current parameters, like a PyTorch model) or a
        function that builds one from ``rngs`` (and, if it takes them, ``num_classes``, ``in_channels``
        and the config's ``model_options``), which ``cfg.seed`` then initialises.
      resume: continue from the latest checkpoint in ``cfg.run_dir``.
      progress: show a progress bar.

    Returns:
      A :class:`FitResult` with the run directory, the evaluation history and the trained model.

    Example:
      >>> net = MyNet(rngs=nnx.Rngs(0))  # doctest: +SKIP
      >>> fit(TrainConfig(dataset="digits", steps=200), model=net).final["test_acc"]  # doctest: +SKIP
    """
    run = train(cfg, resume=resume, progress=progress, model=model)
    nnx.update(run.model, run.state["params"], run.state["rest"])
    run.model.eval()
    return FitResult(run.run_dir, run.history, run.state["params"], run.model)


@dataclasses.dataclass
class Training:
    """What :func:`train` leaves: the final state (stacked over members for an ensemble) and its history,
    whose last row evaluates the final parameters."""

    run_dir: Path
    history: list[dict[str, Any]]
    state: dict
    model: nnx.Module  # the model as built for the config's seed, not yet updated with the state
    eval_def: Any  # its graph in eval mode
    start_step: int  # where this call began (> 0 when resumed)
    wall_s: float


def train(cfg: TrainConfig, members: Sequence[Member] | None = None, *, resume: bool = False,
          progress: bool = True, model: Any = None) -> Training:
    """The one training loop, for a single run (``members=None``) or for K ``(seed, lr, weight_decay)``
    members trained as one vmapped program (:func:`cnnjax.train.fit_ensemble`).

    Every option works for both: devices, streaming, tasks, evaluation and checkpoint intervals, resume.
    A single run whose loss or parameters turn NaN/inf stops with :class:`TrainingError`; an ensemble
    records the step at which each member diverged and stops once all of them have.
    ``model`` is a network of your own instead of the zoo's ``cfg.model`` (see :func:`fit`).
    """
    build = None
    if model is not None:
        label, build = model_builder(model, ensemble=members is not None)
        cfg = dataclasses.replace(cfg, model=label)  # names the run folder, the progress bar and config.json
    if jax.default_backend() == "cpu":
        keep_freed_memory()  # XLA:CPU's per-step temporaries stay in the process: cnnjax.backends.cpu.host_memory
    if members is not None:
        if not members:
            raise TrainingError("fit_ensemble: no members (empty seeds or sweep)")
        if jax.process_count() > 1:
            raise TrainingError("fit_ensemble runs in one process (its members share the local devices); "
                                f"this is a {jax.process_count()}-process run")
        if resume and not cfg.run_dir:
            raise TrainingError("fit_ensemble(resume=True) needs cfg.run_dir: the folder of the ensemble to continue")
    try:
        mesh = data_mesh(cfg.num_devices)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if cfg.batch_size % mesh.size:
        raise TrainingError(f"batch_size={cfg.batch_size} must be divisible by the number of devices ({mesh.size})")
    replicated, by_batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    batch_sharding = by_batch if mesh.size > 1 else None
    batches, model = make_batches(cfg, replicated, batch_sharding, build)
    objective = tasks.objective(cfg, model)
    total = cfg.steps if cfg.steps is not None else cfg.epochs * batches.steps_per_epoch
    augment = make_augment(cfg.augment) if cfg.augment else None
    step_options = dict(augment=augment, batch_sharding=batch_sharding, compute_dtype=cfg.compute_dtype,
                        objective=objective)
    if members is None:
        tx = make_optimizer(cfg, total)
        train_def, eval_def, state = init_state(model, tx, cfg.seed)
        train_step = make_train_step(train_def, tx, cfg.batch_size, cfg.label_smoothing, **step_options)
        eval_step = make_eval_step(eval_def, cfg.compute_dtype, objective=objective)
    else:
        tx = make_injectable_optimizer(cfg, total, decay=any(w != 0 for _, _, w in members))
        eval_def = eval_graph_def(model)
        train_def = nnx.split(model, nnx.Param, ...)[0]
        classes = tasks.model_classes(cfg.task, batches.num_classes)
        create = lambda key: create_model(cfg, batches.input_shape, classes, build, rngs=nnx.Rngs(key))  # noqa: E731
        state = init_members(create, members, tx)
        batches = MemberBatches(batches, [seed for seed, _, _ in members])
        member_step = make_train_step(train_def, tx, cfg.batch_size, cfg.label_smoothing, jit=False, **step_options)
        train_step = jit_step(jax.vmap(member_step, in_axes=(0, *batches.in_axes)), donate_argnums=0)
        evaluate_one = make_eval_step(eval_def, cfg.compute_dtype, jit=False, objective=objective)
        eval_step = jit_step(jax.vmap(evaluate_one, in_axes=(0, 0, None, None)))

    if jax.process_count() > 1 and not cfg.run_dir:
        raise TrainingError("a multi-process run needs run_dir (--run-dir): one folder every process can reach")
    main = is_main_process()  # the only process that writes metrics, plots and the config
    run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg, members)
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"run_dir {run_dir} is a file, not a folder; choose another --run-dir")
    if resume:  # checked before anything is written, so a failed resume leaves no trace
        if not checkpoint.has_checkpoint(run_dir):
            raise checkpoint.CheckpointError(f"no checkpoint found in {run_dir}/checkpoints; start over without --resume")
        if members is not None:
            saved = json.loads((run_dir / "members.json").read_text()) if (run_dir / "members.json").exists() else None
            if saved != member_records(members):
                raise TrainingError(f"cannot resume {run_dir}: its members are {saved}, "
                                    f"this call asks for {member_records(members)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    if not resume:
        main_only(lambda: checkpoint.clear(run_dir), "cnnjax-clear-checkpoints")
    # closed on every path, a failed restore or save included: orbax's threads end with it
    with checkpoint.manager(run_dir, cfg.keep_checkpoints) as mgr:
        history: list[dict[str, Any]] = []
        if resume:
            state, meta = checkpoint.restore(mgr, state, str(run_dir), set_aside=True)
            history = meta.get("history", [])
        elif main:
            cfg.save(run_dir / "config.json")
            if members is not None:
                (run_dir / "members.json").write_text(json.dumps(member_records(members)))
        writer = MetricsWriter(run_dir, enabled=main and members is None)  # an ensemble writes history.jsonl
        writer.rewrite(history)

        state = jax.device_put(state, replicated)
        step = start = int(np.ravel(state["step"])[0])
        if resume and main:
            print(f"resumed from step {step} ({run_dir})", flush=True)
        last_saved = step
        k = 1 if members is None else len(members)
        steps_per_epoch = batches.steps_per_epoch
        desc = f"{cfg.model} on {cfg.dataset}" if members is None else f"{k} x {cfg.model} on {cfg.dataset}"
        bar = tqdm(total=total, initial=step, disable=not (progress and main), desc=desc, unit="step")
        t_start, examples, stopped = time.perf_counter(), 0, False

        def record(epoch: int) -> None:
            sums = _evaluation_sums(eval_step, state["params"], state["rest"], batches.test_batches())
            elapsed = time.perf_counter() - t_start
            row = {"step": step, "epoch": epoch, **_metrics(state["acc"], sums, members is not None),
                   "examples_per_s": examples / max(elapsed, 1e-9), "wall_s": elapsed}
            history.append(row)
            writer.append(row)
            if members is None:
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")

        def save() -> None:
            nonlocal last_saved
            checkpoint.save(mgr, state, {"history": history}, step=step)
            last_saved = step

        try:
            while step < total:
                epoch, i0 = divmod(step, steps_per_epoch)
                if i0 == 0:  # mid-epoch resumes keep the restored accumulators; divergence is remembered
                    state["acc"] = {key: v if key == "first_bad_step" else jnp.zeros_like(v) for key, v in state["acc"].items()}
                i_end = min(steps_per_epoch, i0 + total - step)
                for i, args in enumerate(batches.epoch(epoch, i0, i_end), start=i0):
                    state = train_step(state, *args)
                    step += 1
                    if step % cfg.checkpoint_every == 0 and i + 1 < i_end:
                        if stopped := not _healthy(state, members):
                            break
                        save()
                done = step - (epoch * steps_per_epoch + i0)  # this epoch's steps (fewer if training stopped)
                examples += done * cfg.batch_size * k
                bar.update(done)
                epoch_done = step == (epoch + 1) * steps_per_epoch
                if stopped:
                    break
                if (epoch_done and (epoch + 1) % cfg.eval_every == 0) or step >= total:
                    if stopped := not _healthy(state, members):
                        break
                    record(epoch + 1)
                if step % cfg.checkpoint_every == 0 and step < total and last_saved != step:
                    # after the epoch's evaluation, so a resume from here does not lose that row
                    if stopped := not _healthy(state, members):
                        break
                    save()
            if not history or history[-1]["step"] != step:  # no steps asked for, or every member diverged
                record(-(-step // max(steps_per_epoch, 1)))
            if (last_saved != step or step == 0) and not stopped:  # an ensemble that fully diverged keeps its last good save
                save()
        finally:
            bar.close()
            writer.close()
    if history and main and members is None:
        plot_curves(history, run_dir / "curves.png")
    return Training(run_dir, history, state, model, eval_def, start, time.perf_counter() - t_start)


def _default_run_dir(cfg: TrainConfig, members: Sequence[Member] | None) -> Path:
    what = f"seed{cfg.seed}" if members is None else f"ensemble{len(members)}"
    return Path("runs") / f"{cfg.model}-{cfg.dataset}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"


def _evaluation_sums(eval_step, params, rest, batches) -> tuple:
    """``(loss, top1, top5, count, n)`` summed over an iterable of ``(x, y)`` test batches (per member when
    ``eval_step`` is vmapped)."""
    loss = correct = top5 = count = 0.0
    n = 0
    for x, y in batches:
        l, c, t, k = eval_step(params, rest, x, y)
        loss, correct, top5, count, n = loss + l, correct + c, top5 + t, count + k, n + len(y)
    return loss, correct, top5, count, n


def evaluate(eval_step, params, rest, batches) -> dict[str, float]:
    """Mean loss per example, top-1 and top-5 accuracy over an iterable of ``(x, y)`` test batches.

    Accuracies are over what the task scores: examples, pixels (segmentation) or object cells (detection).
    """
    loss, correct, top5, count, n = _evaluation_sums(eval_step, params, rest, batches)
    count = max(float(count), 1.0)
    return {"loss": float(loss) / n, "acc": float(correct) / count, "top5": float(top5) / count}


def _metrics(acc: dict, sums: tuple, stacked: bool) -> dict[str, Any]:
    """An evaluation row's metrics from the epoch's accumulators and the test sums: numbers for a single run,
    lists (one value per member) for an ensemble."""
    acc, (loss, correct, top5, count, n) = jax.device_get(acc), jax.device_get(sums[:4]) + (sums[4],)

    def member(pick):
        c = max(float(pick(count)), 1.0)
        return {"train_loss": float(pick(acc["loss"])) / max(int(pick(acc["seen"])), 1),
                "train_acc": float(pick(acc["correct"])) / max(int(pick(acc["count"])), 1),
                "test_loss": float(pick(loss)) / n, "test_acc": float(pick(correct)) / c, "test_top5": float(pick(top5)) / c}

    if not stacked:
        return member(lambda a: a)
    rows = [member(lambda a, m=m: a[m]) for m in range(len(acc["seen"]))]
    return {key: [r[key] for r in rows] for key in rows[0]}


def _healthy(state: dict, members: Sequence[Member] | None) -> bool:
    """Whether training goes on: a single run whose loss or parameters became NaN/inf raises
    :class:`TrainingError`; an ensemble goes on while any member is finite."""
    first_bad = np.asarray(state["acc"]["first_bad_step"])
    ok = (first_bad < 0) & finite_params(state["params"], first_bad.shape)
    if members is not None:
        return bool(ok.any())
    if not ok:
        bad = int(first_bad)
        where = f"at step {bad + 1}" if bad >= 0 else f"by step {int(state['step'])}"
        raise TrainingError(
            f"the loss or the parameters became NaN/inf {where}; stopping. The last good checkpoint is kept. "
            f"Try a lower --lr, --grad-clip, or a warmup schedule."
        )
    return True
