"""The ``cnnjax`` command: ``train`` (the main job), ``eval``, and an overview of what exists."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

_PENDING = {
    "sweep": "experiments/ (issue: scripted studies and ablations)",
    "experiment": "experiments/ (issue: scripted studies and ablations)",
}

# TrainConfig fields settable as flags: --flag-name -> field
_FLAGS = {
    "model": str, "dataset": str, "epochs": int, "steps": int, "batch_size": int, "optimizer": str, "lr": float,
    "schedule": str, "warmup_steps": int, "momentum": float, "weight_decay": float, "grad_clip": float,
    "label_smoothing": float, "seed": int, "data_dir": str, "run_dir": str, "checkpoint_every": int,
    "keep_checkpoints": int, "eval_every": int, "augment": str, "num_devices": int, "compute_dtype": str,
}
_BOOL_FLAGS = {"stream": "stream through Grain (default: only datasets above 1 GB)"}


def _overview() -> str:
    import jax

    import cnnjax
    from cnnjax import equivariance, functional, inspect, models, nn

    ops = ", ".join(name for name in functional.__all__ if name != "filters")
    return (
        f"cnnjax {cnnjax.__version__} on jax {jax.__version__}, devices: {', '.join(map(str, jax.devices()))}\n"
        f"cnnjax.functional: {ops}\n"
        f"cnnjax.nn: {', '.join(n for n in nn.__all__ if n[0].isupper())}\n"
        f"cnnjax.models ({len(models.list_models())}): {', '.join(models.list_models())}\n"
        f"cnnjax.inspect: {', '.join(n for n in inspect.__all__ if n[0].islower())}\n"
        f"cnnjax.equivariance: {', '.join(n for n in equivariance.__all__ if n[0].islower())}\n"
        f"commands: cnnjax train [--model M --dataset D ...], cnnjax eval RUN_DIR"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _run_config(run_dir: Path, parser: argparse.ArgumentParser, flag: str = ""):
    """The config saved in a run directory, or a one-line usage error naming what is missing."""
    from cnnjax.train import TrainConfig

    if not (run_dir / "config.json").exists():
        parser.error(f"{flag}{run_dir} is not a run directory (no config.json)")
    return TrainConfig.load(run_dir / "config.json")


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax import models
    from cnnjax.data import BUILDERS
    from cnnjax.train import OPTIMIZERS, SCHEDULES, TrainConfig, fit
    from cnnjax.train.step import COMPUTE_DTYPES

    if args.resume:
        cfg = _run_config(Path(args.resume), parser, "--resume ")
    else:
        cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        overrides = {k: getattr(args, k) for k in (*_FLAGS, *_BOOL_FLAGS) if getattr(args, k) is not None}
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.model not in models.list_models():
        parser.error(f"unknown --model {cfg.model!r}; choose from: {', '.join(models.list_models())}")
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
    if cfg.dataset in BUILDERS:
        print(f"(the {cfg.dataset} dataset is generated offline on first use)")
    if args.seeds or args.sweep:
        return _ensemble(cfg, args, parser)
    print(f"training {cfg.model} on {cfg.dataset} ({cfg.optimizer}, lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed})")
    result = fit(cfg, resume=bool(args.resume), progress=not args.quiet)
    final = result.final
    print(_table([
        ("test accuracy", f"{final['test_acc']:.4f} (top-5 {final['test_top5']:.4f})"),
        ("test loss", f"{final['test_loss']:.4f}"),
        ("train accuracy", f"{final['train_acc']:.4f}"),
        ("steps", f"{final['step']} ({final['epoch']} epochs)"),
        ("throughput", f"{final['examples_per_s']:,.0f} examples/s"),
        ("wall time", f"{final['wall_s']:.1f} s"),
        ("run directory", str(result.run_dir)),
    ]))
    return 0


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

    if args.resume:
        parser.error("--resume is for single runs; ensembles (--seeds/--sweep) are not checkpointed yet")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    sweep = _parse_sweep(args.sweep or [], parser)
    seeds = list(range(cfg.seed, cfg.seed + (args.seeds or 1)))
    k = len(seeds) * len(sweep.get("lr", [0])) * len(sweep.get("weight_decay", [0]))
    print(f"training {k} members of {cfg.model} on {cfg.dataset} in one vmapped program (seeds {seeds[0]}..{seeds[-1]}"
          + "".join(f", {key} {vals}" for key, vals in sweep.items()) + ")")
    r = fit_ensemble(cfg, seeds, lr=sweep.get("lr"), weight_decay=sweep.get("weight_decay"), progress=not args.quiet)
    width = max(len(m["status"]) for m in r.members)
    print("  member  seed  lr        weight_decay  test_acc  status")
    for m in r.members:
        print(f"  {m['member']:>6}  {m['seed']:>4}  {m['lr']:<8g}  {m['weight_decay']:<12g}  {m['test_acc']:.4f}    {m['status']:<{width}}")
    s = r.summary
    print(f"test accuracy over {s['finished']}/{s['members']} finished members: {s['test_acc']['mean']:.4f} +- {s['test_acc']['std']:.4f}")
    print(f"{s['member_steps_per_s']:,.0f} member-steps/s; results in {r.run_dir}/members.csv")
    return 0


def _eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from cnnjax.train import build_model, evaluate
    from cnnjax.train.loop import make_batches
    from cnnjax.train import checkpoint as ckpt
    from cnnjax.train.optim import make_optimizer
    from cnnjax.train.step import init_state, make_eval_step

    run_dir = Path(args.run_dir)
    cfg = _run_config(run_dir, parser)
    if args.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    batches, input_shape, num_classes = make_batches(cfg)
    model = build_model(cfg, input_shape, num_classes)
    tx = make_optimizer(cfg, 1)
    _, eval_def, state = init_state(model, tx, cfg.seed)
    state, _ = ckpt.restore(ckpt.manager(run_dir, cfg.keep_checkpoints), state, str(run_dir))
    metrics = evaluate(make_eval_step(eval_def), state["params"], state["rest"], batches.test_batches())
    print(json.dumps({"run_dir": str(run_dir), "step": int(state["step"]), **{f"test_{k}": v for k, v in metrics.items()}}))
    return 0


def _bench(argv: list[str]) -> int:
    """Run ``python -m benchmarks`` with ``argv``; the suite lives beside the package in a source checkout."""
    sys.path.insert(0, os.getcwd())
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        print("cnnjax bench: error: no benchmarks/ folder here; run it from the root of a cnnjax source checkout",
              file=sys.stderr)
        return 2
    return bench_main(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnjax", description="cnnjax: a JAX/Flax library for CNN research")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train a zoo model (default: mnist1d_convbase on MNIST-1D, offline)")
    for name, kind in _FLAGS.items():
        train.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None)
    for name, text in _BOOL_FLAGS.items():
        train.add_argument(f"--{name}", dest=name, action="store_const", const=True, default=None, help=text)
    train.add_argument("--config", help="a YAML file or a Python file with get_config(); flags override it")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--seeds", type=int, default=None, help="train this many seeds (from --seed) as one vmapped ensemble")
    train.add_argument("--sweep", action="append", metavar="KEY=V1,V2", help="sweep lr or weight_decay inside the ensemble")
    ev = sub.add_parser("eval", help="evaluate a run's latest checkpoint on the test split")
    ev.add_argument("run_dir")
    ev.add_argument("--data-dir", default=None)
    bench = sub.add_parser("bench", help="time cnnjax vs plain Flax vs PyTorch (the benchmarks/ folder of a source checkout)",
                           add_help=False)
    bench.add_argument("args", nargs=argparse.REMAINDER)
    for name, what in _PENDING.items():
        p = sub.add_parser(name, help=f"(not yet available: needs {what})")
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # all its flags (--help too) belong to the benchmark command
        return _bench(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(_overview())
        return 0
    if args.command in _PENDING:
        print(f"`cnnjax {args.command}` is not available yet: it arrives with {_PENDING[args.command]}.")
        return 0
    from cnnjax.data import DatasetNotFoundError
    from cnnjax.train import CheckpointError, TrainingError

    sub = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001 (argparse's own registry)
    try:
        return _train(args, sub) if args.command == "train" else _eval(args, sub)
    except (DatasetNotFoundError, CheckpointError, TrainingError, FileNotFoundError) as e:
        print(f"cnnjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad values caught by the config or the model builder
        print(f"cnnjax {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
