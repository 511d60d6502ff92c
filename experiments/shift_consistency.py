"""Downsampling and shift invariance: accuracy and consistency under circular shifts (Zhang 2019; Chaman & Dokmanic 2021).

Each downsampling choice (strided conv, max pool, average pool, BlurPool with filters of
size 2/3/5, APS) is trained in two settings: the published one (zero padding, flattening
head) and a shift-friendly one (circular padding, global-average head), on MNIST-1D
(``mnist1d_convbase``, same padding) and on ``digits`` (``digits_cnn``), 5 seeds per cell
as one vmapped ensemble. Consistency is the fraction of test examples whose predicted class
is the same under two random circular shifts of up to ``max_shift`` pixels per axis.
Expected: blur improves consistency monotonically with filter size, and APS with circular
padding and a global pool is 100% consistent.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.data import load_arrays
from cnnjax.equivariance import consistency
from cnnjax.train import TrainConfig, fit_ensemble
from experiments import common

CHOICES = {"strided conv": ("stride", 3), "max pool": ("max", 3), "avg pool": ("avg", 3), "blur 2": ("blur", 2),
           "blur 3": ("blur", 3), "blur 5": ("blur", 5), "APS": ("aps", 3)}
SETTINGS = {"zeros + flatten": ("zeros", "flatten"), "circular + global": ("circular", "global")}
DATA = {"mnist1d": {"model": "mnist1d_convbase", "options": {"padding": "same"}, "max_shift": 8, "steps": 1000},
        "digits": {"model": "digits_cnn", "options": {}, "max_shift": 7, "steps": 800}}


def get_config(quick: bool) -> dict:
    data = {"digits": {**DATA["digits"], "steps": 40}} if quick else DATA
    return {"data": data, "choices": ["strided conv", "APS"] if quick else list(CHOICES),
            "settings": ["circular + global"] if quick else list(SETTINGS),
            "seeds": [0, 1] if quick else [0, 1, 2, 3, 4], "lr": 1e-2, "batch_size": 100, "eval_examples": 1000}


def evaluate(result, x, y, max_shift: int, seed: int) -> list[dict]:
    """Per member: consistency, and accuracy with every example rolled by ``s`` along every axis, s = 0..max_shift."""
    dims = x.ndim - 2
    rows = []
    acc = [(np.asarray(result.predict(jnp.roll(x, s, axis=tuple(range(1, dims + 1))))).argmax(-1) == y).mean(-1)
           for s in range(max_shift + 1)]
    for m, member in enumerate(result.members):
        model = result.member_model(m)
        cons = consistency(model, x, max_shift=max_shift, key=jax.random.key(seed + m), spatial_dims=dims)
        rows.append({"seed": member["seed"], "test_acc": member["test_acc"], "consistency": float(cons),
                     "shifted_acc": float(np.mean([a[m] for a in acc[1:]])),
                     **{f"acc_shift{s}": float(a[m]) for s, a in enumerate(acc)}, "status": member["status"]})
    return rows


def run(study: common.Study) -> None:
    cfg = study.config
    rows = []
    for dataset, d in cfg["data"].items():
        ds = load_arrays(dataset).normalized()
        x, y = jnp.asarray(ds.x_test[: cfg["eval_examples"]]), np.asarray(ds.y_test[: cfg["eval_examples"]])
        for setting in cfg["settings"]:
            padding_mode, head = SETTINGS[setting]
            for choice in cfg["choices"]:
                downsample, blur = CHOICES[choice]
                base = TrainConfig.merge(TrainConfig(), {
                    "model": d["model"], "dataset": dataset, "steps": d["steps"], "lr": cfg["lr"],
                    "batch_size": cfg["batch_size"], "run_dir": str(study.out / "runs" / dataset / f"{setting}-{choice}"),
                    "model_options": {**d["options"], "padding_mode": padding_mode, "head": head,
                                      "downsample": downsample, "blur_size": blur}})
                result = fit_ensemble(base, cfg["seeds"], progress=study.progress)
                rows += [{"dataset": dataset, "setting": setting, "downsample": choice, **r}
                         for r in evaluate(result, x, y, d["max_shift"], 0)]
    common.write_csv(rows, study.out / f"{study.name}.csv")
    report(study, rows)


def report(study: common.Study, rows: list[dict]) -> None:
    cfg = study.config
    cons = common.group_stats(rows, ["dataset", "setting", "downsample"], "consistency")
    acc = {(s["dataset"], s["setting"], s["downsample"]): s
           for s in common.group_stats(rows, ["dataset", "setting", "downsample"], "test_acc")}
    sacc = {(s["dataset"], s["setting"], s["downsample"]): s
            for s in common.group_stats(rows, ["dataset", "setting", "downsample"], "shifted_acc")}
    for dataset, d in cfg["data"].items():
        stats = [s for s in cons if s["dataset"] == dataset]
        common.bar_plot(stats, "downsample", study.out / f"consistency_{dataset}.png", hue="setting",
                        ylabel="consistency (%)", title=f"{dataset}: same class under two random shifts ≤ {d['max_shift']} px")
        series, errors = {}, {}
        for setting in cfg["settings"]:
            for choice in cfg["choices"]:
                mine = [r for r in rows if (r["dataset"], r["setting"], r["downsample"]) == (dataset, setting, choice)]
                curve = np.array([[r[f"acc_shift{s}"] for s in range(d["max_shift"] + 1)] for r in mine]) * 100
                series[f"{choice}, {setting}"] = (list(range(d["max_shift"] + 1)), curve.mean(0))
                errors[f"{choice}, {setting}"] = curve.std(0)
        common.line_plot(series, study.out / f"accuracy_vs_shift_{dataset}.png", xlabel="circular shift (px, every axis)",
                         ylabel="test accuracy (%)", title=f"{dataset}: accuracy of shifted test inputs", errors=errors)
    table = [{"dataset": s["dataset"], "setting": s["setting"], "downsample": s["downsample"],
              "test acc (%)": common.fmt(acc[k]["mean"], acc[k]["std"]),
              "acc, shifted 1..max (%)": common.fmt(sacc[k]["mean"], sacc[k]["std"]),
              "consistency (%)": common.fmt(s["mean"], s["std"], digits=2)}
             for s in cons for k in [(s["dataset"], s["setting"], s["downsample"])]]
    study.add(
        f"Adam (lr {cfg['lr']}, batch {cfg['batch_size']}); steps per dataset: "
        + ", ".join(f"{k} {v['steps']:,}" for k, v in cfg["data"].items())
        + f"; seeds {cfg['seeds']} as one vmapped ensemble per cell; consistency and shifted accuracy on "
        f"{cfg['eval_examples']} test examples (mean ± std over seeds).",
        common.markdown_table(table),
        "\n\n".join(f"![consistency {d}](consistency_{d}.png) ![accuracy vs shift {d}](accuracy_vs_shift_{d}.png)"
                    for d in cfg["data"]),
        _verdict(cons, cfg),
    )


def _verdict(cons: list[dict], cfg: dict) -> str:
    out = []
    mean = {(s["dataset"], s["setting"], s["downsample"]): s["mean"] for s in cons}
    for dataset in cfg["data"]:
        aps = mean.get((dataset, "circular + global", "APS"))
        if aps is not None:
            out.append(f"{dataset}: APS with circular padding and a global pool is "
                       f"{'100% consistent' if aps == 1.0 else f'{100 * aps:.2f}% consistent (NOT 100%)'}.")
        for setting in cfg["settings"]:
            blur = [mean.get((dataset, setting, c)) for c in ("strided conv", "blur 2", "blur 3", "blur 5")]
            if None not in blur:
                mono = all(a <= b for a, b in zip(blur, blur[1:]))
                out.append(f"{dataset}, {setting}: consistency for strided / blur 2 / 3 / 5 is "
                           + " / ".join(f"{100 * b:.1f}" for b in blur)
                           + (" (monotone in the filter size)." if mono else " (NOT monotone in the filter size)."))
    return " ".join(out)


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
