"""Segmentation: U-Net on the generated shapes' masks, scored by mean IoU on held-out images.

``unet`` (DoubleConv blocks, max pools, 2x transposed convs with skip connections) trains on
the 4,000 ``shapes`` training masks (background + rectangle, ellipse, triangle) with per-pixel
cross-entropy through ``cnnjax.train.fit(task="segment")``, and, for comparison, with the
soft Dice loss. Held-out: the 1,000 test images; pixel accuracy and mean IoU over the four
classes from one confusion matrix. Target: mIoU ≥ 0.85 in the full run.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from cnnjax.data import SHAPE_NAMES, load_arrays
from cnnjax.inspect import count_params
from cnnjax.segmentation import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from cnnjax.train import TrainConfig, fit
from cnnjax.viz import plot_segmentation
from experiments import common

TARGET_MIOU = 0.85
CLASSES = ("background", *SHAPE_NAMES)


def get_config(quick: bool) -> dict:
    return {"model": "unet", "model_options": {"depth": 2 if quick else 3, "width": 8 if quick else 16},
            "losses": ["cross_entropy"] if quick else ["cross_entropy", "dice"], "epochs": 1 if quick else 8,
            "steps": 40 if quick else None, "batch_size": 50, "lr": 1e-2 if quick else 3e-3, "schedule": "cosine", "seed": 0,
            "examples_shown": 6}


def run(study: common.Study) -> None:
    cfg = study.config
    ds = load_arrays("shapes")
    x, truth = ds.normalized().x_test, ds.extras["test"]["mask"]
    rows, shown = [], {}
    for loss in cfg["losses"]:
        train_cfg = TrainConfig.merge(TrainConfig(), {
            "model": cfg["model"], "dataset": "shapes", "task": "segment", "loss": loss, "epochs": cfg["epochs"],
            "steps": cfg["steps"], "batch_size": cfg["batch_size"], "lr": cfg["lr"], "schedule": cfg["schedule"],
            "seed": cfg["seed"], "model_options": cfg["model_options"], "run_dir": str(study.out / "runs" / loss)})
        result = fit(train_cfg, progress=study.progress)
        predict = jax.jit(lambda v: result.model(v).argmax(-1))
        pred = np.concatenate([np.asarray(predict(x[i : i + 250])) for i in range(0, len(x), 250)])
        conf = confusion_matrix(pred, truth, len(CLASSES))
        rows.append({"loss": loss, "params": count_params(result.model), "train_s": result.final["wall_s"],
                     "pixel_acc": float(pixel_accuracy(conf)), "miou": float(mean_iou(conf)),
                     **{f"iou_{c}": float(v) for c, v in zip(CLASSES, iou_per_class(conf))}})
        shown[loss] = pred[: cfg["examples_shown"]]
    common.write_csv(rows, study.out / f"{study.name}.csv")
    k = cfg["examples_shown"]
    plot_segmentation(ds.x_test[:k], [truth[:k], *shown.values()], ["input", "truth", *[f"{n} prediction" for n in shown]],
                      path=study.out / "masks.png")
    best = max(rows, key=lambda r: r["miou"])
    study.add(
        f"`{cfg['model']}` with {cfg['model_options']} ({rows[0]['params']:,} parameters), "
        + (f"{cfg['steps']} steps" if cfg["steps"] else f"{cfg['epochs']} epochs")
        + f" of Adam (lr {cfg['lr']}, {cfg['schedule']} schedule, batch {cfg['batch_size']}) per loss.",
        common.markdown_table([{"loss": r["loss"], "pixel accuracy": f"{100 * r['pixel_acc']:.2f}%",
                                "mIoU": f"{r['miou']:.3f}", **{f"IoU {c}": f"{r[f'iou_{c}']:.3f}" for c in CLASSES},
                                "training (s)": f"{r['train_s']:.0f}"} for r in rows]),
        f"**Best mIoU = {best['miou']:.3f}** ({best['loss']}) over background and the three shapes on the 1,000 "
        f"held-out images: the target of {TARGET_MIOU} was {'met' if best['miou'] >= TARGET_MIOU else 'NOT met'}.",
        "Masks (colour = class) over the held-out inputs:\n\n![masks](masks.png)",
    )


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
