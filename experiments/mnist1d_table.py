"""MNIST-1D baselines: logistic regression, MLP and CNNs (Greydanus 2020, "Scaling Down Deep Learning").

Every model trains with Adam (lr 1e-2, batch 100) for 6,000 steps, 3 seeds as one vmapped
ensemble per model (``cnnjax.train.run_sweep``). The published test accuracies are
logistic 32%, MLP 68% and CNN 94%.
"""

from __future__ import annotations

import json
import sys

from cnnjax.train import TrainConfig, run_sweep
from experiments import common

PUBLISHED = {"logistic": 0.32, "mlp": 0.68, "mnist1d_convbase": 0.94}  # Greydanus 2020, Table 1
LABELS = {"logistic": "logistic", "mlp": "MLP", "mnist1d_convbase": "CNN (ConvBase)", "mnist1d_cnn": "CNN (lecture, 2,050 params)"}


def get_config(quick: bool) -> dict:
    return {
        "base": {"dataset": "mnist1d", "optimizer": "adam", "lr": 1e-2, "batch_size": 100,
                 "steps": 80 if quick else 6000, "eval_every": 1},
        "grid": {"model": ["logistic", "mnist1d_cnn"] if quick else list(LABELS), "seed": [0, 1] if quick else [0, 1, 2]},
    }


def train(study: common.Study):
    """The sweep's rows, and each model's test-accuracy curve (mean over seeds)."""
    cfg = study.config
    result = run_sweep(TrainConfig.merge(TrainConfig(), cfg["base"]), cfg["grid"], study.out / "runs",
                       progress=study.progress)
    curves = {}
    for model in cfg["grid"]["model"]:
        hist = [json.loads(line) for line in (study.out / "runs" / f"model={model}" / "history.jsonl").open()]
        curves[LABELS[model]] = ([h["step"] for h in hist], [100 * sum(h["test_acc"]) / len(h["test_acc"]) for h in hist])
    return result.rows, curves


def run(study: common.Study) -> None:
    rows, curves = train(study)
    common.write_csv(rows, study.out / f"{study.name}.csv")
    stats = common.group_stats(rows, ["model"], "test_acc")
    common.bar_plot(stats, "model", study.out / "accuracy.png", ylabel="test accuracy (%)", reference=PUBLISHED,
                    title="MNIST-1D: mean ± std over seeds; bars = measured, dashes = published")
    common.line_plot(curves, study.out / "curves.png", xlabel="step", ylabel="test accuracy (%)",
                     title="MNIST-1D test accuracy during training (mean over seeds)")
    table = [{"model": LABELS[s["model"]], "measured test acc (%)": common.fmt(s["mean"], s["std"]),
              "seeds": s["n"], "published (%)": f"{100 * PUBLISHED[s['model']]:.0f}" if s["model"] in PUBLISHED else "-"}
             for s in stats]
    mean = {s["model"]: s["mean"] for s in stats}
    if {"logistic", "mlp", "mnist1d_convbase"} <= set(mean):
        holds = mean["mnist1d_convbase"] > mean["mlp"] > mean["logistic"]
        verdict = (f"The paper's ordering CNN > MLP > logistic {'holds' if holds else 'does NOT hold'} here. ")
    else:
        verdict = ""
    study.add(
        f"{study.config['base']['steps']:,} steps of Adam (lr 1e-2, batch 100) per model, "
        f"{len(study.config['grid']['seed'])} seeds trained as one vmapped ensemble per model.",
        common.markdown_table(table),
        "![accuracy](accuracy.png)\n\n![curves](curves.png)",
        verdict + "Greydanus trained with Adam at the same learning rate and batch size in PyTorch; "
        "the dashes in the plot are his published accuracies.",
    )


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
