"""The ``cnnjax`` command: ``train`` (the main job), ``eval``, ``sweep``, ``experiment``, ``bench``, and an overview."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import sys
from pathlib import Path

# TrainConfig fields settable as flags: --flag-name -> field
_FLAGS = {
    "model": str, "dataset": str, "task": str, "loss": str, "epochs": int, "steps": int, "batch_size": int, "optimizer": str, "lr": float,
    "schedule": str, "warmup_steps": int, "momentum": float, "weight_decay": float, "grad_clip": float,
    "label_smoothing": float, "seed": int, "data_dir": str, "run_dir": str, "checkpoint_every": int,
    "keep_checkpoints": int, "eval_every": int, "augment": str, "num_devices": int, "compute_dtype": str,
}
_BOOL_FLAGS = {"stream": "stream through Grain (default: only datasets above 1 GB)"}


def _overview() -> str:
    import jax

    import cnnjax
    from cnnjax import detection, equivariance, functional, inspect, models, nn, segmentation, viz

    ops = ", ".join(name for name in functional.__all__ if name != "filters")
    return (
        f"cnnjax {cnnjax.__version__} on jax {jax.__version__}, devices: {', '.join(map(str, jax.devices()))}\n"
        f"cnnjax.functional: {ops}\n"
        f"cnnjax.nn: {', '.join(n for n in nn.__all__ if n[0].isupper())}\n"
        f"cnnjax.models ({len(models.list_models())}): {', '.join(models.list_models())}\n"
        f"cnnjax.inspect: {', '.join(n for n in inspect.__all__ if n[0].islower())}\n"
        f"cnnjax.equivariance: {', '.join(n for n in equivariance.__all__ if n[0].islower())}\n"
        f"cnnjax.detection: {', '.join(n for n in detection.__all__ if n[0].islower())}\n"
        f"cnnjax.segmentation: {', '.join(segmentation.__all__)}\n"
        f"cnnjax.viz: {', '.join(n for n in viz.__all__ if n[0].islower())}\n"
        f"commands: cnnjax train [--model M --dataset D ...], cnnjax eval RUN_DIR, cnnjax sweep [CONFIG] --grid K=V1,V2, "
        f"cnnjax experiment NAME [--quick], cnnjax bench, cnnjax info [--build]"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _run_config(run_dir: Path, parser: argparse.ArgumentParser, flag: str = ""):
    """The config saved in a run directory, or a one-line usage error naming what is missing."""
    from cnnjax.train import TrainConfig

    if not (run_dir / "config.json").exists():
        parser.error(f"{flag}{run_dir} is not a run directory (no config.json)")
    return TrainConfig.from_run_dir(run_dir)  # paths resolve against the folder given, not the one saved inside


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax import models
    from cnnjax.data import BUILDERS
    from cnnjax.train import OPTIMIZERS, SCHEDULES, TrainConfig, fit
    from cnnjax.train.parallel import is_main_process
    from cnnjax.train.step import COMPUTE_DTYPES
    from cnnjax.train.tasks import check_task

    if args.distributed or args.coordinator or args.num_processes is not None or args.process_id is not None:
        _join(args, parser)
    if args.resume:
        cfg = _run_config(Path(args.resume), parser, "--resume ")
    else:
        cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        overrides = {k: getattr(args, k) for k in (*_FLAGS, *_BOOL_FLAGS) if getattr(args, k) is not None}
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.model not in models.list_models():
        parser.error(f"unknown --model {cfg.model!r}; choose from: {', '.join(models.list_models())}")
    try:
        check_task(cfg.task, cfg.loss)
    except ValueError as e:
        parser.error(f"--{e}")
    if cfg.optimizer not in OPTIMIZERS:
        parser.error(f"unknown --optimizer {cfg.optimizer!r}; choose from: {', '.join(OPTIMIZERS)}")
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        parser.error(f"unknown --compute-dtype {cfg.compute_dtype!r}; choose from: {', '.join(COMPUTE_DTYPES)}")
    if cfg.schedule not in SCHEDULES:
        parser.error(f"unknown --schedule {cfg.schedule!r}; choose from: {', '.join(SCHEDULES)}")
    for name in ("epochs", "batch_size", "checkpoint_every", "keep_checkpoints", "eval_every"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        parser.error(f"--lr must be > 0, got {cfg.lr}")
    main = is_main_process()
    if cfg.dataset in BUILDERS and main:
        print(f"(the {cfg.dataset} dataset is generated offline on first use)")
    if args.seeds or args.sweep or (args.resume and (Path(args.resume) / "members.json").exists()):
        return _ensemble(cfg, args, parser)
    if main:
        print(f"training {cfg.model} on {cfg.dataset} ({cfg.optimizer}, lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed})")
    result = fit(cfg, resume=bool(args.resume), progress=not args.quiet)
    if not main:
        return 0
    final = result.final
    accuracy = {"classify": "test accuracy", "segment": "test pixel accuracy", "detect": "test cell class accuracy"}
    top5 = f" (top-5 {final['test_top5']:.4f})" if cfg.task == "classify" else ""
    print(_table([
        (accuracy[cfg.task], f"{final['test_acc']:.4f}{top5}"),
        ("test loss", f"{final['test_loss']:.4f}"),
        ("train accuracy", f"{final['train_acc']:.4f}"),
        ("steps", f"{final['step']} ({final['epoch']} epochs)"),
        ("throughput", f"{final['examples_per_s']:,.0f} examples/s"),
        ("wall time", f"{final['wall_s']:.1f} s"),
        ("run directory", str(result.run_dir)),
    ]))
    return 0


def _join(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Join the multi-process run the flags describe, before anything touches a JAX backend."""
    import jax

    from cnnjax.train.parallel import initialize

    if args.seeds or args.sweep:
        parser.error("--seeds/--sweep train ensembles in one process; multi-process runs train a single model")
    try:
        initialize(args.coordinator, args.num_processes, args.process_id)
    except ValueError as e:
        parser.error(str(e))
    except RuntimeError as e:
        parser.error(f"could not join the multi-process run: {str(e).strip().splitlines()[0][:300]}")
    if jax.process_index() == 0:
        print(f"process 0 of {jax.process_count()}: {jax.device_count()} devices in all, {jax.local_device_count()} here")


_SWEEPABLE = {"lr": "lr", "weight_decay": "weight_decay", "weight-decay": "weight_decay"}


def _parse_sweep(items: list[str], parser: argparse.ArgumentParser) -> dict[str, list[float]]:
    sweep: dict[str, list[float]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in _SWEEPABLE or not values:
            parser.error(f"--sweep {item!r}: expected KEY=v1,v2,... with KEY one of: lr, weight_decay")
        try:
            sweep[_SWEEPABLE[key]] = [float(v) for v in values.split(",")]
        except ValueError:
            parser.error(f"--sweep {item!r}: values must be numbers")
    return sweep


def _ensemble(cfg, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax.train import fit_ensemble

    if args.resume:  # the members come from the run directory
        if args.seeds or args.sweep:
            parser.error("--resume continues the ensemble saved in RUN_DIR with its own members; drop --seeds/--sweep")
        members = json.loads((Path(args.resume) / "members.json").read_text())
        seeds = list(dict.fromkeys(m["seed"] for m in members))
        sweep = {key: list(dict.fromkeys(m[key] for m in members)) for key in ("lr", "weight_decay")}
    else:
        if args.seeds is not None and args.seeds < 1:
            parser.error(f"--seeds must be >= 1, got {args.seeds}")
        sweep = _parse_sweep(args.sweep or [], parser)
        seeds = list(range(cfg.seed, cfg.seed + (args.seeds or 1)))
    k = len(seeds) * len(sweep.get("lr", [0])) * len(sweep.get("weight_decay", [0]))
    print(f"training {k} members of {cfg.model} on {cfg.dataset} in one vmapped program (seeds {seeds[0]}..{seeds[-1]}"
          + "".join(f", {key} {vals}" for key, vals in sweep.items()) + ")")
    r = fit_ensemble(cfg, seeds, lr=sweep.get("lr"), weight_decay=sweep.get("weight_decay"), progress=not args.quiet,
                     resume=bool(args.resume))
    width = max(len(m["status"]) for m in r.members)
    print("  member  seed  lr        weight_decay  test_acc  status")
    for m in r.members:
        print(f"  {m['member']:>6}  {m['seed']:>4}  {m['lr']:<8g}  {m['weight_decay']:<12g}  {m['test_acc']:.4f}    {m['status']:<{width}}")
    s = r.summary
    print(f"test accuracy over {s['finished']}/{s['members']} finished members: {s['test_acc']['mean']:.4f} +- {s['test_acc']['std']:.4f}")
    print(f"{s['member_steps_per_s']:,.0f} member-steps/s; results in {r.run_dir}/members.csv")
    return 0


def _eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax.train import evaluate
    from cnnjax.train.loop import make_batches
    from cnnjax.train.tasks import objective
    from cnnjax.train import checkpoint as ckpt
    from cnnjax.train.optim import make_optimizer
    from cnnjax.train.step import init_state, make_eval_step

    run_dir = Path(args.run_dir)
    cfg = _run_config(run_dir, parser)
    if args.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    batches, model = make_batches(cfg)
    tx = make_optimizer(cfg, 1)
    _, eval_def, state = init_state(model, tx, cfg.seed)
    if not ckpt.has_checkpoint(run_dir):
        raise ckpt.CheckpointError(f"no checkpoint found in {run_dir}/checkpoints")
    with ckpt.manager(run_dir, cfg.keep_checkpoints) as mgr:  # read only: damaged steps are skipped, not moved
        state, _ = ckpt.restore(mgr, state, str(run_dir))
    metrics = evaluate(make_eval_step(eval_def, objective=objective(cfg, model)), state["params"], state["rest"], batches.test_batches())
    print(json.dumps({"run_dir": str(run_dir), "step": int(state["step"]), **{f"test_{k}": v for k, v in metrics.items()}}))
    return 0


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax.train import TrainConfig, group_stats, parse_grid, run_sweep
    from cnnjax.train.sweep import cells

    base = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    try:
        grid = parse_grid(args.grid or [])
    except ValueError as e:
        parser.error(str(e))
    if not grid:
        parser.error("give at least one --grid KEY=V1,V2,... (e.g. --grid model=mlp,logistic seed=0,1,2)")
    out = Path(args.out or f"runs/sweep-{Path(args.config).stem if args.config else 'default'}")
    print(f"sweep into {out}/ (finished cells are skipped, so re-running resumes): "
          + ", ".join(f"{k}={v}" for k, v in grid.items()))
    r = run_sweep(base, grid, out, jobs=args.jobs, progress=not args.quiet, metric=args.metric)
    keys = [k for k in grid if k != "seed"]
    for s in group_stats(r.rows, keys, args.metric):
        label = ", ".join(f"{k}={s[k]}" for k in keys) or "all"
        print(f"  {label}: {args.metric} {s['mean']:.4f} +- {s['std']:.4f} (n={s['n']})")
    print(f"{len(cells(grid))} cell(s), {len(r.rows)} run(s): {r.csv_path}" + (f", {r.plot_path}" if r.plot_path else ""))
    return 0


def source_checkout() -> Path:
    """The folder holding the ``cnnjax`` package: a source checkout's root when cnnjax is installed from one."""
    return Path(__file__).resolve().parents[1]


def _from_checkout(package: str, command: str):
    """Import ``package`` (``benchmarks``, ``experiments``), which lives beside ``cnnjax`` in its source checkout,
    from any working directory and without putting anything on ``sys.path``."""
    if package in sys.modules:
        return sys.modules[package]
    init = source_checkout() / package / "__init__.py"
    if not init.exists():
        print(f"cnnjax {command}: error: needs a source checkout of cnnjax (a {package}/ folder beside the cnnjax "
              f"package, {source_checkout()}); clone the repository and `pip install -e .` there", file=sys.stderr)
        return None
    spec = importlib.util.spec_from_file_location(package, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)
    return module


def _bench(argv: list[str]) -> int:
    """Run ``python -m benchmarks`` with ``argv``; the suite lives beside the package in a source checkout."""
    if _from_checkout("benchmarks", "bench") is None:
        return 2
    from benchmarks.__main__ import main as bench_main

    return bench_main(argv)


def _experiment(argv: list[str]) -> int:
    """``cnnjax experiment NAME ARGS`` is ``python -m experiments.NAME ARGS`` (from a source checkout's root)."""
    experiments = _from_checkout("experiments", "experiment")
    if experiments is None:
        return 2
    names = experiments.STUDIES
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: cnnjax experiment NAME [--quick] [--out DIR] [--set KEY=VALUE]\nstudies:\n"
              + "\n".join(f"  {n:<24} {importlib.import_module(f'experiments.{n}').__doc__.strip().splitlines()[0]}"
                          for n in names))
        return 0 if argv else 2
    if argv[0] not in names:
        print(f"cnnjax experiment: error: unknown study {argv[0]!r}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"experiments.{argv[0]}").main(argv[1:])


class ArgumentParser(argparse.ArgumentParser):
    """argparse with errors as one line that says where the help is, instead of the usage block first
    (the studies' command lines use it too)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


# --help groups for the train flags: (title, [(field, help)]); the choices and defaults are added when built
_TRAIN_GROUPS = [
    ("model", [("model", "zoo model"), ("task", "what is trained"), ("loss", "empty: the task's own, cross_entropy (segment: or dice; detect: yolo)")]),
    ("data", [("dataset", "dataset (built offline when generated)"), ("data_dir", "where TFDS datasets live"),
              ("augment", "on-device augmentations, comma-separated"), ("batch_size", "examples per step"),
              ("stream", None)]),
    ("optimisation", [("optimizer", "optax optimizer"), ("lr", "peak learning rate"), ("schedule", "learning-rate schedule"),
                      ("warmup_steps", "warmup for warmup_cosine"), ("momentum", "for momentum/nesterov"),
                      ("weight_decay", "L2 (decoupled for adamw)"), ("grad_clip", "global-norm clipping"),
                      ("label_smoothing", "for cross-entropy"), ("compute_dtype", "bfloat16: mixed precision")]),
    ("run", [("epochs", "passes over the training set"), ("steps", "total steps (overrides --epochs)"),
             ("seed", "initialisation, data order and augmentation"), ("run_dir", "output folder (default: runs/NAME-TIME)"),
             ("checkpoint_every", "steps between checkpoints"), ("keep_checkpoints", "checkpoints kept"),
             ("eval_every", "epochs between test evaluations")]),
]


def _choices(field: str) -> list[str] | None:
    from cnnjax import models
    from cnnjax.data import AUGMENTATIONS, BUILDERS
    from cnnjax.train import OPTIMIZERS, SCHEDULES
    from cnnjax.train.step import COMPUTE_DTYPES
    from cnnjax.train.tasks import TASKS

    return {"model": models.list_models(), "task": list(TASKS), "optimizer": list(OPTIMIZERS), "schedule": list(SCHEDULES),
            "compute_dtype": list(COMPUTE_DTYPES), "augment": list(AUGMENTATIONS),
            "dataset": [*BUILDERS, "or any TFDS name with supervised keys"]}.get(field)


def _parser() -> argparse.ArgumentParser:
    from cnnjax.train.config import TrainConfig

    defaults = TrainConfig()
    parser = ArgumentParser(prog="cnnjax", description="cnnjax: a JAX/Flax library for CNN research")
    sub = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    train = sub.add_parser("train", help="train a zoo model (default: mnist1d_convbase on MNIST-1D, offline)",
                           description="Train a zoo model; every flag defaults to the main job's config.")
    groups = {title: train.add_argument_group(title) for title, _ in _TRAIN_GROUPS}
    for title, fields in _TRAIN_GROUPS:
        group = groups[title]
        for name, text in fields:
            if name in _BOOL_FLAGS:
                group.add_argument(f"--{name}", dest=name, action="store_const", const=True, default=None,
                                   help=_BOOL_FLAGS[name])
                continue
            choices = _choices(name)
            extra = f"; one of: {', '.join(choices)}" if choices else ""
            group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_FLAGS[name], default=None,
                               metavar=name.upper(), help=f"{text} (default: {getattr(defaults, name)!r}{extra})")
    group = groups["run"]
    group.add_argument("--config", help="a YAML file or a Python file with get_config(); flags override it")
    group.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    ens = train.add_argument_group("ensembles (one vmapped program)")
    ens.add_argument("--seeds", type=int, default=None, help="train this many seeds (from --seed) as one vmapped ensemble")
    ens.add_argument("--sweep", action="append", metavar="KEY=V1,V2", help="sweep lr or weight_decay inside the ensemble")
    dist = train.add_argument_group("distributed")
    dist.add_argument("--num-devices", dest="num_devices", type=int, default=None, metavar="N",
                      help="data parallelism over this many local devices (default: all)")
    dist.add_argument("--coordinator", metavar="HOST:PORT",
                       help="multi-process runs (the same command in every process): process 0's address")
    dist.add_argument("--num-processes", type=int, help="how many processes take part")
    dist.add_argument("--process-id", type=int, help="this process's index, 0 .. num-processes-1")
    dist.add_argument("--distributed", action="store_true",
                       help="join a multi-process run found by JAX's cluster detection (SLURM, Open MPI, TPU pods)")
    ev = sub.add_parser("eval", help="evaluate a run's latest checkpoint on the test split")
    ev.add_argument("run_dir")
    ev.add_argument("--data-dir", default=None)
    bench = sub.add_parser("bench", help="time cnnjax vs plain Flax vs PyTorch (the benchmarks/ folder of a source checkout)",
                           add_help=False)
    bench.add_argument("args", nargs=argparse.REMAINDER)
    sw = sub.add_parser("sweep", help="train a grid of configs; seeds/lr/weight_decay vmapped, finished cells skipped")
    sw.add_argument("config", nargs="?", help="a YAML or Python config file (default: the main job's config)")
    sw.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="config keys (or model_options.NAME) and their values")
    sw.add_argument("--out", help="results folder (default: runs/sweep-<config name>); re-running resumes")
    sw.add_argument("--jobs", type=int, default=1, help="cells trained at once in separate processes")
    sw.add_argument("--metric", default="test_acc", help="the column summarized and plotted")
    sw.add_argument("--quiet", action="store_true", help="no progress bars")
    ex = sub.add_parser("experiment", help="run a study from experiments/ (a source checkout): NAME [--quick]",
                        add_help=False)
    ex.add_argument("args", nargs=argparse.REMAINDER)
    cw = sub.add_parser("convert-weights", help="load a .pth/.safetensors file into a zoo model and write it as an "
                                                "orbax folder (models.create(name, weights=OUT) reads it, no torch needed)")
    cw.add_argument("input", help="a torchvision/timm .pth, .pt or .safetensors file you have (nothing is downloaded)")
    cw.add_argument("output", help="the folder to write (must not exist)")
    cw.add_argument("--model", required=True, help="the zoo model the weights belong to, e.g. resnet50")
    cw.add_argument("--num-classes", type=int, default=1000, help="the file's classifier size (default: 1000)")
    cw.add_argument("--in-channels", type=int, default=3, help="input channels (default: 3)")
    info = sub.add_parser("info", help="versions, devices, the backends' status and which kernel each op family uses")
    info.add_argument("--build", action="store_true", help="compile the oneDNN CPU kernels now (again, after a failure)")
    return parser


def _convert_weights(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``cnnjax convert-weights IN OUT --model NAME``: a PyTorch/safetensors file to an orbax weights folder."""
    import jax
    from flax import nnx

    from cnnjax import models

    if args.model not in models.list_models():
        parser.error(f"unknown --model {args.model!r}; choose from: {', '.join(models.list_models())}")
    model = models.create(args.model, num_classes=args.num_classes, in_channels=args.in_channels,
                          weights=args.input)
    out = models.save_weights(model, args.output)
    print(f"wrote {args.model} ({sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))):,} parameters) "
          f"to {out}; load it with models.create({args.model!r}, num_classes={args.num_classes}, weights={str(out)!r})")
    return 0


def _one_line_warnings(prog: str) -> None:
    """cnnjax's own warnings (a skipped damaged checkpoint) print as one ``PROG: warning: ...`` line."""
    import warnings

    from cnnjax.train.checkpoint import CheckpointWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CheckpointWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["train"], ["eval"], ["sweep"], ["bench"], ["experiment"]):
        # XLA:CPU's per-step temporaries stay in the process (see cnnjax.backends.cpu.host_memory); set before JAX's
        # threads allocate, which is why the command does it and importing cnnjax does not
        from cnnjax.backends.cpu import keep_freed_memory

        keep_freed_memory()
    if argv[:1] == ["bench"]:  # all its flags (--help too) belong to the benchmark command
        return _bench(argv[1:])
    if argv[:1] == ["experiment"]:  # likewise the study's
        return _experiment(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(_overview())
        return 0
    if args.command == "info":
        from cnnjax.info import report

        print(report(build=args.build))
        return 0
    from cnnjax.data import DatasetNotFoundError
    from cnnjax.train import CheckpointError, TrainingError

    sub = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001 (argparse's own registry)
    _one_line_warnings(f"cnnjax {args.command}")
    try:
        return {"train": _train, "eval": _eval, "sweep": _sweep, "convert-weights": _convert_weights}[args.command](args, sub)
    except (DatasetNotFoundError, CheckpointError, TrainingError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"cnnjax {args.command}: error: {' '.join(line.strip() for line in str(e).splitlines())}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad values caught by the config or the model builder
        print(f"cnnjax {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
