"""Normalization ablation: none / BatchNorm / GroupNorm / LayerNorm / InstanceNorm in a ResNet-20.

The course claims that normalization allows larger learning rates and faster training. Each
``norm`` of ``resnet20`` trains on ``digits`` (``--set dataset=cifar10`` where CIFAR-10 is
prepared) with SGD + momentum at several learning rates, 2 seeds, every (lr, seed) of a
norm as one vmapped ensemble (``cnnjax.train.run_sweep``). Reported: test accuracy, the
steps until the training loss first falls below a target, and which runs diverged.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from cnnjax.train import TrainConfig, run_sweep
from cnnjax.train.sweep import cell_name
from experiments import common

NORMS = ["none", "batch", "group", "layer", "instance"]


def get_config(quick: bool) -> dict:
    return {"dataset": "digits", "target_loss": 0.3,
            "base": {"model": "resnet20", "optimizer": "momentum", "momentum": 0.9, "batch_size": 100,
                     "steps": 20 if quick else 300, "grad_clip": None},
            "grid": {"model_options.norm": ["none", "batch"] if quick else NORMS,
                     "lr": [0.05] if quick else [0.005, 0.05, 0.5], "seed": [0] if quick else [0, 1]}}


def steps_to_target(history: list[dict], member: int, target: float) -> int | None:
    """The first evaluated step whose epoch-mean training loss is below ``target`` (None: never)."""
    return next((h["step"] for h in history if h["train_loss"][member] < target), None)


def run(study: common.Study) -> None:
    cfg = study.config
    base = TrainConfig.merge(TrainConfig(), {**cfg["base"], "dataset": cfg["dataset"]})
    sweep = run_sweep(base, cfg["grid"], study.out / "runs", progress=study.progress)
    histories = {norm: [json.loads(line) for line in
                        (sweep.out_dir / cell_name({"model_options.norm": norm}) / "history.jsonl").open()]
                 for norm in cfg["grid"]["model_options.norm"]}
    rows = []
    for r in sweep.rows:
        history = histories[r["model_options.norm"]]
        reached = steps_to_target(history, r["member"], cfg["target_loss"]) if r["status"] == "ok" else None
        rows.append({"norm": r["model_options.norm"], **{k: v for k, v in r.items() if k != "model_options.norm"},
                     "steps_to_target": reached})
    common.write_csv(rows, study.out / f"{study.name}.csv")
    lrs = cfg["grid"]["lr"]
    stats = common.group_stats(rows, ["norm", "lr"], "test_acc")
    series = {n: ([s["lr"] for s in stats if s["norm"] == n], [100 * s["mean"] for s in stats if s["norm"] == n])
              for n in cfg["grid"]["model_options.norm"]}
    common.line_plot(series, study.out / "accuracy_vs_lr.png", xlabel="learning rate (SGD, momentum 0.9)",
                     ylabel="test accuracy (%)", title=f"resnet20 on {cfg['dataset']}: diverged runs are left out")
    table = []
    for n in cfg["grid"]["model_options.norm"]:
        row = {"norm": n}
        for lr in lrs:
            mine = [r for r in rows if r["norm"] == n and r["lr"] == lr]
            ok = [r for r in mine if r["status"] == "ok"]
            acc = np.array([r["test_acc"] for r in ok])
            reach = [r["steps_to_target"] for r in ok if r["steps_to_target"] is not None]
            row[f"lr {lr}: acc (%)"] = (common.fmt(acc.mean(), acc.std(ddof=1) if len(acc) > 1 else 0.0) if len(ok)
                                        else "diverged") + (f" ({len(mine) - len(ok)} diverged)" if 0 < len(ok) < len(mine) else "")
            row[f"lr {lr}: steps to loss < {cfg['target_loss']}"] = (
                f"{np.mean(reach):.0f}" + ("" if len(reach) == len(mine) else f" ({len(mine) - len(reach)} never)")
                if reach else "never")
        table.append(row)
    study.add(
        f"resnet20 (option-A shortcuts) on {cfg['dataset']}, {cfg['base']['steps']:,} steps of SGD with momentum 0.9, "
        f"batch {cfg['base']['batch_size']}, constant learning rate, seeds {cfg['grid']['seed']}. GroupNorm uses 8 groups; "
        "LayerNorm normalizes each example over (H, W, C), i.e. GroupNorm with one group. The training loss is the "
        "mean over each epoch, so steps to the target are resolved to an epoch.",
        common.markdown_table(table),
        "![accuracy vs lr](accuracy_vs_lr.png)",
        _verdict(rows, lrs),
    )


def _verdict(rows: list[dict], lrs: list[float]) -> str:
    top = max(lrs)
    ok = lambda n: [r for r in rows if r["norm"] == n and r["lr"] == top and r["status"] == "ok"]  # noqa: E731
    acc = lambda n: np.mean([r["test_acc"] for r in ok(n)]) if ok(n) else float("nan")  # noqa: E731
    norms = list(dict.fromkeys(r["norm"] for r in rows))
    parts = [f"{n} {100 * acc(n):.1f}%" if ok(n) else f"{n} diverged" for n in norms]
    base = acc("none") if ok("none") else 0.0
    better = [n for n in norms if n != "none" and ok(n) and acc(n) > base + 0.05]
    verdict = (f"supported: {', '.join(better)} still learn{'s' if len(better) == 1 else ''} (mean accuracy above) "
               f"where no normalization {'diverges' if not ok('none') else 'lags by more than 5 points'}"
               if better and "none" in norms else "not supported by these runs")
    return f"At the largest learning rate ({top}): " + ", ".join(parts) + f". The course's claim is {verdict}."


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
