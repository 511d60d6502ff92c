"""Rotated digits: Z2, C4, C8, C16, D4 and D8 networks at matched size, trained and tested on randomly rotated digits.

The rotated-MNIST protocol (Larochelle et al. 2007; the benchmark of Cohen & Welling 2016 and
Weiler & Cesa 2019) on data made offline: scikit-learn's digits upsampled to 12x12, padded to
18x18 so that no rotation clips them, and every training and test image turned by its own
uniform random angle (the ``rotated_digits`` dataset: fixed split, seeds 0 and 1). Every
network is the zoo's ``gcnn`` (P4CNN's architecture: 3x3 lifting and group convs with group
batch norm and ReLU, a 2x2 max pool after layer 2, group max pool, global average, linear)
with :func:`cnnjax.models.gcnn.matched_channels` fields, so all have about Z2CNN's parameter
count; each trains over several seeds as one vmapped ensemble through ``cnnjax.train``.

The published direction to check: every group model beats Z2 (Cohen & Welling 2016, Table 1),
and C8/C16 beat C4 (Weiler & Cesa 2019, the MNIST-rot benchmark). Where this differs from the
papers: 1,437 training and 360 test images instead of 12,000 and 50,000, 8x8 digits upsampled
instead of MNIST, a shorter schedule, and 3x3 filters everywhere (Weiler & Cesa's C8/C16
networks use larger, steerable filters and antialiased pooling).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import functional as F
from cnnjax import models
from cnnjax.data import load_arrays
from cnnjax.equivariance import ErrorCurve, disc_mask, error_curve, plot_error_curves, rotate
from cnnjax.inspect import count_params
from cnnjax.train import TrainConfig, fit_ensemble
from experiments import common

GROUPS = {"Z2": "z2", "C4": "C4", "D4": "D4", "C8": "C8", "D8": "D8", "C16": "C16"}
CURVE_MODELS = ["Z2", "C4", "C8", "C16"]
PUBLISHED = ("Cohen & Welling 2016 (rotated MNIST): Z2CNN 5.03% test error, P4CNN 2.28%, so the group model beats "
             "Z2. Weiler & Cesa 2019 (the MNIST-rot benchmark): C8 and C16 regular-field models have lower error "
             "than C4, and every group model lower than the conventional CNN.")


def get_config(quick: bool) -> dict:
    return {"models": list(GROUPS), "dataset": "rotated_digits",
            "model_options": {"padding": 1, "depth": 2 if quick else 5},
            "steps": 12 if quick else 450, "lr": 5e-3, "schedule": "cosine", "batch_size": 64,
            "seeds": [0] if quick else [0, 1, 2],
            "curve_angles": [0, 45, 90] if quick else [float(a) for a in np.arange(0, 360.1, 7.5)],
            "curve_images": 8 if quick else 64}


def _invariance(model, x_raw: np.ndarray, mean: np.ndarray, std: np.ndarray, angles) -> np.ndarray:
    """Relative change of the logits when the raw images turn (before normalising, so the background stays 0)."""
    model.eval()
    f = jax.jit(lambda raw: model((raw - mean) / std))
    return error_curve(f, jnp.asarray(x_raw), rotate(angles, mode="bicubic"), invariant=True).errors


def resampling_loss(x_raw: np.ndarray, angle: float = 45.0) -> float:
    """How much of a digit turning it by ``angle`` and back loses (bicubic), relative, inside the disc."""
    x = jnp.asarray(x_raw)
    back = F.rotate(F.rotate(x, angle, "bicubic"), -angle, "bicubic")
    disc = jnp.asarray(disc_mask(x.shape[1:3]))[..., None]
    return float(jnp.linalg.norm((back - x) * disc) / jnp.linalg.norm(x * disc))


def run(study: common.Study) -> None:
    cfg = study.config
    raw = load_arrays(cfg["dataset"])
    mean, std = jnp.asarray(raw.mean), jnp.asarray(raw.std)
    probe = raw.x_test[: cfg["curve_images"]]
    angles = cfg["curve_angles"]
    checks = [a for a in (22.5, 45.0, 90.0) if a in angles]  # the table's columns
    rows, curves = [], {}
    for label in cfg["models"]:
        options = {**cfg["model_options"], "group": GROUPS[label]}
        base = TrainConfig.merge(TrainConfig(), {
            "model": "gcnn", "dataset": cfg["dataset"], "steps": cfg["steps"], "lr": cfg["lr"],
            "schedule": cfg["schedule"], "batch_size": cfg["batch_size"], "model_options": options,
            "run_dir": str(study.out / "runs" / label)})
        result = fit_ensemble(base, cfg["seeds"], progress=study.progress)
        params = count_params(models.create("gcnn", **options))
        acc = (np.asarray(result.predict(jnp.asarray((raw.x_test - raw.mean) / raw.std))).argmax(-1) == raw.y_test).mean(-1)
        for m, member in enumerate(result.members):
            init = models.create("gcnn", seed=member["seed"], **options)
            at = {"init": _invariance(init, probe, mean, std, angles),
                  "trained": _invariance(result.member_model(m), probe, mean, std, angles)}
            for stage, errs in at.items():
                curves.setdefault((label, stage), []).append(errs)
            check = {f"inv_{stage}_{a:g}": float(at[stage][angles.index(a)]) for stage in at for a in checks}
            rows.append({"model": label, "group": GROUPS[label], "params": params, "seed": member["seed"],
                         "status": member["status"], "test_acc": float(acc[m]), **check})
    common.write_csv(rows, study.out / f"{study.name}.csv")
    _report(study, rows, curves, angles, checks, resampling_loss(probe))


def _report(study, rows, curves, angles, checks, loss: float) -> None:
    cfg = study.config
    stats = {s["model"]: s for s in common.group_stats(rows, ["model"], "test_acc")}
    inv = {(k, a): {s["model"]: s for s in common.group_stats(rows, ["model"], f"inv_{k}_{a:g}")}
           for k in ("init", "trained") for a in checks}
    params = {r["model"]: r["params"] for r in rows}
    table = [{"model": m, "params": f"{params[m]:,}", "test error (%)": common.fmt(1 - stats[m]["mean"], stats[m]["std"]),
              **{f"invariance error {a:g}° ({k})": f"{inv[(k, a)][m]['mean']:.1e}" for k in ("init", "trained") for a in checks}}
             for m in cfg["models"]]
    for stage in ("init", "trained"):
        shown = {m: curves[(m, stage)] for m in CURVE_MODELS if (m, stage) in curves}
        mean_curves = {m: _curve(np.mean(c, 0), angles) for m, c in shown.items()}
        plot_error_curves(mean_curves, str(study.out / f"invariance_vs_angle_{stage}.png"),
                          errors={m: np.std(c, 0) for m, c in shown.items()},
                          title=f"Logits' change when test digits turn, {'at initialisation' if stage == 'init' else 'trained'} "
                                "(mean ± std over seeds)")
    common.write_csv([{"model": m, "stage": s, "angle": a, "mean": float(np.mean(c, 0)[i]), "std": float(np.std(c, 0)[i])}
                      for (m, s), c in curves.items() for i, a in enumerate(angles)], study.out / "curves.csv")
    err = {m: 1 - stats[m]["mean"] for m in cfg["models"]}
    groups = [m for m in cfg["models"] if m != "Z2"]
    beat_z2 = [m for m in groups if err[m] < err["Z2"]]
    c_beat_c4 = [m for m in ("C8", "C16") if m in err and "C4" in err and err[m] < err["C4"]]
    a45 = 45.0 if 45.0 in checks else checks[0]
    ratio = {k: inv[(k, a45)]["C8"]["mean"] / inv[(k, a45)]["Z2"]["mean"] for k in ("init", "trained")} if "C8" in err else {}
    quarter = max(r["inv_trained_90"] for r in rows if r["model"] != "Z2") if 90.0 in checks else float("nan")
    study.add(
        f"{cfg['steps']:,} steps of Adam (lr {cfg['lr']}, {cfg['schedule']} schedule, batch {cfg['batch_size']}) on "
        f"`{cfg['dataset']}` (1,437 training digits, each turned by a random angle; the 360 test digits likewise), "
        f"seeds {cfg['seeds']}, options {cfg['model_options']}. Invariance errors: "
        f"`||f(rotate(x)) - f(x)|| / ||f(x)||` of the logits on {cfg['curve_images']} test digits, turned before "
        "normalising (bicubic), at initialisation and trained, mean over seeds.",
        common.markdown_table(table),
        "![invariance vs angle, initialisation](invariance_vs_angle_init.png) "
        "![invariance vs angle, trained](invariance_vs_angle_trained.png)",
        f"**Published direction.** {PUBLISHED}",
        f"**Measured here.** Z2's error is {100 * err['Z2']:.1f}%. "
        + ("Every group model beats it. " if len(beat_z2) == len(groups) else
           f"Group models that beat it: {', '.join(f'{m} ({100 * err[m]:.1f}%)' for m in beat_z2) or 'none'}; "
           f"that do not: {', '.join(f'{m} ({100 * err[m]:.1f}%)' for m in groups if m not in beat_z2)}. ")
        + f"C8/C16 below C4 ({100 * err.get('C4', float('nan')):.1f}%): "
        f"{', '.join(f'{m} ({100 * err[m]:.1f}%)' for m in c_beat_c4) or 'neither'}. Differences smaller than the "
        "std over seeds are not an ordering this data can show.",
        (f"**Invariance.** Every group model's logits change by at most {quarter:.1e} under quarter turns "
         f"(trained). At {a45:g}°, off the pixel grid, C8's error is {ratio['init']:.2f} of Z2's at initialisation and "
         f"{ratio['trained']:.2f} of it trained." if ratio else ""),
        "**Reading it.** A D_N network's logits are invariant to mirror images as well, so it cannot tell a digit from "
        "its mirror image, and near-mirror pairs among the digits (2 and 5, for one) cost it accuracy: that is where "
        "D4 and D8 fall behind here. Off the pixel grid the curves show no dip at C8's 45° or C16's 22.5°: the "
        "error there is the same as between the group's angles. With 3x3 filters on 18x18 digits, what limits it is "
        f"the grid itself: turning a test digit by 45° and back (bicubic) already changes it by {100 * loss:.1f}% "
        "inside the disc, and the stride-2 max pool samples the turned maps on a different lattice.",
    )


def _curve(errors: np.ndarray, angles) -> ErrorCurve:
    return ErrorCurve("rotate", np.asarray(angles, float), np.asarray(errors), "invariance")


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
