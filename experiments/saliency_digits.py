"""Saliency: a CNN trained on digits, its saliency maps, first-layer filters, feature maps and what deeper units respond to.

``digits_cnn`` trains on the 8x8 ``digits`` through ``cnnjax.train.fit``. For held-out digits
the study draws four saliency methods (vanilla gradient, SmoothGrad, integrated gradients,
Grad-CAM on ``conv2``), the 16 first-layer filters and one digit's first-layer feature maps,
and the classic hand-made filter bank over a real photograph (the one matplotlib ships).
Deeper layers are shown by feature visualisation (``cnnjax.viz.feature_visualization``): for
each class score and for units of ``conv2`` and ``conv3``, the input found by gradient ascent
(Fourier parametrisation, jitter, values kept within the training data's range), each titled
with the held-out digit that excites that unit most.

A deletion test checks that the maps point at pixels the network uses: on every test
digit, the ``k`` most salient pixels are set to the mean pixel (0 after standardising) and
accuracy is compared with deleting ``k`` random pixels. Expected: deleting salient pixels
hurts more (Samek et al. 2017's pixel-flipping).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from cnnjax.data import load_arrays
from cnnjax.train import TrainConfig, fit
from cnnjax.viz import (
    feature_maps,
    feature_visualization,
    plot_feature_maps,
    plot_feature_visualization,
    plot_filter_bank,
    plot_filters,
    plot_saliency,
    sample_image,
    saliency,
)
from experiments import common

METHODS = {"vanilla": {}, "smoothgrad": {"samples": 32}, "integrated_gradients": {"steps": 32},
           "grad_cam": {"layer": "conv2"}}


def get_config(quick: bool) -> dict:
    return {"model": "digits_cnn", "steps": 50 if quick else 1500, "batch_size": 100, "lr": 3e-3, "seed": 0,
            "deleted_pixels": [4, 8, 16], "examples_shown": 6, "random_repeats": 5,
            "visualized_units": 8, "ascent_steps": 32 if quick else 512}


def delete(x: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """``x`` with each example's ``k`` highest-scoring pixels set to 0 (the standardised mean)."""
    flat = scores.reshape(len(x), -1)
    top = np.argsort(-flat, axis=1)[:, :k]
    keep = np.ones_like(flat, bool)
    np.put_along_axis(keep, top, False, axis=1)
    return x * keep.reshape(x.shape[:-1] + (1,))


def run(study: common.Study) -> None:
    cfg = study.config
    train_cfg = TrainConfig.merge(TrainConfig(), {
        "model": cfg["model"], "dataset": "digits", "steps": cfg["steps"], "batch_size": cfg["batch_size"],
        "lr": cfg["lr"], "seed": cfg["seed"], "run_dir": str(study.out / "runs" / cfg["model"])})
    result = fit(train_cfg, progress=study.progress)
    model = result.model
    ds = load_arrays("digits")
    x, y = ds.normalized().x_test, ds.y_test
    logits = jax.jit(lambda v: model(v))
    acc = lambda v: float((np.asarray(logits(v)).argmax(-1) == y).mean())  # noqa: E731
    maps = {m: np.asarray(saliency(model, x, y, m, **opts)) for m, opts in METHODS.items()}
    rng = np.random.default_rng(0)
    rows = []
    for k in cfg["deleted_pixels"]:
        random = np.mean([acc(delete(x, rng.uniform(size=x.shape[:-1]), k)) for _ in range(cfg["random_repeats"])])
        rows.append({"deleted": k, "pixels": "random", "accuracy": random})
        rows += [{"deleted": k, "pixels": m, "accuracy": acc(delete(x, s, k))} for m, s in maps.items()]
    common.write_csv(rows, study.out / f"{study.name}.csv")

    n = cfg["examples_shown"]
    picks = [int(np.flatnonzero(y == d)[0]) for d in range(n)]
    plot_saliency(ds.x_test[picks], {m: s[picks] for m, s in maps.items()}, study.out / "saliency.png",
                  titles=[f"digit {y[i]}" for i in picks])
    plot_filters(model, path=study.out / "filters.png")
    plot_feature_maps(model, x[picks[0]], "conv1", study.out / "feature_maps.png")
    photo = sample_image()
    plot_filter_bank(photo[::2, ::2], study.out / "filter_bank.png")
    recognised = visualize_units(study, model, np.asarray(logits(x)), x, y)

    table = {}
    for r in rows:
        table.setdefault(r["pixels"], {"pixels deleted by": r["pixels"]})[f"{r['deleted']} of 64"] = f"{100 * r['accuracy']:.1f}%"
    worst = {k: min((r for r in rows if r["deleted"] == k and r["pixels"] != "random"), key=lambda r: r["accuracy"])
             for k in cfg["deleted_pixels"]}
    rand = {r["deleted"]: r["accuracy"] for r in rows if r["pixels"] == "random"}
    beats = {m: all(next(r["accuracy"] for r in rows if r["pixels"] == m and r["deleted"] == k) < rand[k]
                    for k in cfg["deleted_pixels"]) for m in METHODS}
    study.add(
        f"`{cfg['model']}`, {cfg['steps']} steps of Adam (lr {cfg['lr']}, batch {cfg['batch_size']}): "
        f"test accuracy {100 * acc(x):.1f}% on the 360 held-out digits (training {result.final['wall_s']:.0f} s).",
        "Saliency for each method, target = the true class (Grad-CAM on `conv2`, a 4x4 map upsampled):\n\n"
        "![saliency](saliency.png)",
        "**Deletion test**: test accuracy after setting the most salient pixels of each digit to the mean pixel, "
        f"against random pixels (mean of {cfg['random_repeats']} draws):",
        common.markdown_table(list(table.values())),
        "Deleting salient pixels hurts more than deleting random ones for "
        f"{', '.join(m for m, b in beats.items() if b) or 'no method'}"
        + (f"; not for {', '.join(m for m, b in beats.items() if not b)}" if not all(beats.values()) else "")
        + f". The most damaging map at {max(cfg['deleted_pixels'])} pixels: "
        f"{worst[max(cfg['deleted_pixels'])]['pixels']}. (Integrated gradients' baseline is the same mean pixel the "
        "deletion writes, and its attributions sum to the change that baseline causes, which favours it here.)",
        "First-layer filters (3x3, one input channel) and the first layer's 16 feature maps of one digit:\n\n"
        "![filters](filters.png)\n\n![feature maps](feature_maps.png)",
        "**What deeper units respond to** (feature visualisation: gradient ascent on the input, "
        f"{cfg['ascent_steps']} Adam steps, Fourier parametrisation, 1-pixel jitter, values within the training "
        "data's range). Each image's title names the held-out digit that excites that unit most. Class scores "
        f"first; the network classifies {recognised} of the 10 class images as their own class:\n\n"
        "![class images](features_logits.png)\n\n![conv2 units](features_conv2.png)\n\n"
        "![conv3 units](features_conv3.png)",
        "The hand-made filters of `cnnjax.functional.filters` over a real photograph (Grace Hopper, shipped with "
        "matplotlib): Sobel and Prewitt respond to vertical or horizontal edges, the blurs smooth, the Laplacian of "
        "Gaussian marks blobs and outlines, and each Gabor picks one orientation.\n\n![filter bank](filter_bank.png)",
    )


def visualize_units(study: common.Study, model, scores: np.ndarray, x: np.ndarray, y: np.ndarray) -> int:
    """Feature visualisations of the class scores and of conv2/conv3 units, titled with each unit's most exciting
    test digit (``scores``: the model's logits for ``x``); returns how many class images the model classifies
    as their own class."""
    cfg = study.config
    options = {"shape": x.shape[1:], "steps": cfg["ascent_steps"], "value_range": (float(x.min()), float(x.max()))}
    classes = feature_visualization(model, "logits", list(range(10)), **options)
    predicted = np.asarray(model(classes)).argmax(-1)
    plot_feature_visualization(classes, study.out / "features_logits.png", cols=10,
                               titles=[f"class {c}: seen as {p}\ntop digit {y[scores[:, c].argmax()]}"
                                       for c, p in enumerate(predicted)])
    for layer in ("conv2", "conv3"):
        act = feature_maps(model, x, layer)
        units = list(range(min(cfg["visualized_units"], act.shape[-1])))
        images = feature_visualization(model, layer, units, **options)
        top = act.reshape(len(x), -1, act.shape[-1]).mean(1).argmax(0)
        plot_feature_visualization(images, study.out / f"features_{layer}.png", cols=len(units),
                                   titles=[f"{layer}[{u}]\ntop digit {y[top[u]]}" for u in units])
    return int((predicted == np.arange(10)).sum())


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
