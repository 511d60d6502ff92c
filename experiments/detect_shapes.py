"""Detection: a YOLO-v1-style detector on the generated shapes, scored by mAP@0.5 on held-out images.

``yolo_v1`` (3x3 conv + BatchNorm + leaky ReLU stages, an ``S x S`` grid with 2 boxes and 3
class scores per cell) trains on the 4,000 ``shapes`` training images with YOLO v1's
sum-squared loss (λ_coord 5, λ_noobj 0.5) through ``cnnjax.train.fit(task="detect")``.
Held-out: the 1,000 test images, decoded, per-class NMS (IoU 0.5), then PASCAL-VOC mAP@0.5.
Target: mAP@0.5 ≥ 0.8 in the full run.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from cnnjax.data import SHAPE_NAMES, load_arrays
from cnnjax.detection import detect, mean_average_precision
from cnnjax.inspect import count_params
from cnnjax.train import TrainConfig, fit
from cnnjax.viz import plot_detections
from experiments import common

TARGET_MAP = 0.8


def get_config(quick: bool) -> dict:
    return {"model": "yolo_v1", "model_options": {"grid": 8, "stages": 2, "width": 8 if quick else 16},
            "epochs": 1 if quick else 30, "batch_size": 50, "lr": 1e-3, "schedule": "cosine", "seed": 0,
            "score_threshold": 0.05, "iou_threshold": 0.5, "max_outputs": 10, "examples_shown": 8}


def run(study: common.Study) -> None:
    cfg = study.config
    train_cfg = TrainConfig.merge(TrainConfig(), {
        "model": cfg["model"], "dataset": "shapes", "task": "detect", "epochs": cfg["epochs"],
        "batch_size": cfg["batch_size"], "lr": cfg["lr"], "schedule": cfg["schedule"], "seed": cfg["seed"],
        "model_options": cfg["model_options"], "run_dir": str(study.out / "runs" / "yolo")})
    result = fit(train_cfg, progress=study.progress)
    ds = load_arrays("shapes")
    x = ds.normalized().x_test
    predict = jax.jit(lambda v: detect(result.model(v), x.shape[1:3], result.model.boxes, score_threshold=cfg["score_threshold"],
                                       iou_threshold=cfg["iou_threshold"], max_outputs=cfg["max_outputs"]))
    outs = [predict(x[i : i + 250]) for i in range(0, len(x), 250)]
    boxes, scores, classes = (np.concatenate([np.asarray(o[k]) for o in outs]) for k in range(3))
    gt_boxes, gt_classes = ds.extras["test"]["boxes"], ds.extras["test"]["classes"]
    metric = mean_average_precision(boxes, scores, classes, gt_boxes, gt_classes, iou_threshold=0.5, num_classes=3)
    final = result.final
    rows = [{"class": SHAPE_NAMES[k], "ap50": metric["ap"][k], "ground_truth_boxes": metric["num_gt"][k]} for k in metric["ap"]]
    rows.append({"class": "mean", "ap50": metric["map"], "ground_truth_boxes": sum(metric["num_gt"].values())})
    common.write_csv(rows, study.out / f"{study.name}.csv")
    k = cfg["examples_shown"]
    plot_detections(ds.x_test[:k], boxes[:k], classes[:k], scores[:k], class_names=SHAPE_NAMES, gt_boxes=gt_boxes[:k],
                    gt_classes=gt_classes[:k], min_score=0.3, path=study.out / "detections.png")
    common.line_plot({"train loss": ([h["epoch"] for h in result.history], [h["train_loss"] for h in result.history]),
                      "test loss": ([h["epoch"] for h in result.history], [h["test_loss"] for h in result.history])},
                     study.out / "loss.png", xlabel="epoch", ylabel="YOLO loss per image", title="YOLO v1 loss on shapes")
    met = metric["map"] >= TARGET_MAP
    study.add(
        f"`{cfg['model']}` with {cfg['model_options']} ({count_params(result.model):,} parameters), "
        f"{cfg['epochs']} epochs of Adam (lr {cfg['lr']}, {cfg['schedule']} schedule, batch {cfg['batch_size']}) "
        f"on the 4,000 training images; {final['wall_s']:.0f} s of training. Detections: score = confidence x class "
        f"probability ≥ {cfg['score_threshold']}, per-class NMS at IoU {cfg['iou_threshold']}, at most "
        f"{cfg['max_outputs']} per image.",
        common.markdown_table([{"class": r["class"], "AP@0.5": f"{r['ap50']:.3f}",
                                "ground-truth boxes": r["ground_truth_boxes"]} for r in rows]),
        f"**mAP@0.5 = {metric['map']:.3f}** on the 1,000 held-out images: the target of {TARGET_MAP} was "
        f"{'met' if met else 'NOT met'}. Ground truth includes shapes that later shapes partly or wholly cover, "
        f"and YOLO v1 keeps one object per grid cell, so neither kind can be found.",
        "Predictions (score ≥ 0.3, coloured by class) over the ground truth (dashed white):\n\n![detections](detections.png)",
        "![loss](loss.png)",
    )


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
