"""Padding mode x depth: how far from translation equivariance a conv stack is, and where the error lives.

Random stacks: 3x3 convs + ReLU at stride 1 on 32x32x8 inputs, each padding mode, depths
1..8, several seeds; the input is rolled by 3 pixels along both axes. The report gives the
relative error on the whole output, on the units that ``mask="border"`` keeps (receptive
field at least 3 pixels from every border), and the fraction of output positions that
actually differ ("band"), beside the fraction the receptive-field mask predicts.

Trained stacks: ``mnist1d_cnn`` with ``padding="same"``, a global-pool head and each padding
mode, trained on MNIST-1D; the error after every layer for shifts of 8 (the total stride).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import functional as F
from cnnjax.data import load_arrays
from cnnjax.equivariance import border_mask, equivariance_error, layerwise_equivariance, shift
from cnnjax.train import TrainConfig, fit_ensemble
from experiments import common

MODES = ("zeros", "circular", "reflect", "replicate")


def get_config(quick: bool) -> dict:
    return {"random": {"depths": [1, 2, 3] if quick else list(range(1, 9)), "seeds": [0, 1] if quick else [0, 1, 2],
                       "size": 32, "channels": 8, "shift": 3},
            "trained": {"steps": 40 if quick else 3000, "seeds": [0] if quick else [0, 1], "shift": 8,
                        "modes": ["zeros", "circular"] if quick else list(MODES),
                        "base": {"model": "mnist1d_cnn", "dataset": "mnist1d", "lr": 1e-2,
                                 "model_options": {"padding": "same", "head": "global"}}}}


def stack(depth: int, mode: str, channels: int, seed: int):
    keys = jax.random.split(jax.random.key(seed), depth)
    ws = [jax.random.normal(k, (3, 3, channels, channels)) * (2 / (9 * channels)) ** 0.5 for k in keys]

    def f(x):
        for w in ws:
            x = jax.nn.relu(F.conv(x, w, padding=1, padding_mode=mode))
        return x
    return f


def random_rows(cfg: dict) -> tuple[list[dict], dict]:
    n, c, s = cfg["size"], cfg["channels"], cfg["shift"]
    t = shift(s, spatial_dims=2)
    rows, maps = [], {}
    for mode in MODES:
        for depth in cfg["depths"]:
            for seed in cfg["seeds"]:
                x = jax.random.normal(jax.random.key(1000 + seed), (4, n, n, c))
                f = stack(depth, mode, c, seed)
                y = f(x)
                diff = jnp.abs(f(t(x)) - t(y)).sum(axis=(0, -1))
                changed = np.asarray(diff > 1e-5 * jnp.abs(y).sum(axis=(0, -1)).max())
                keep = border_mask(f, x, y, t)[0]
                rows.append({"padding": mode, "depth": depth, "seed": seed,
                             "error": float(equivariance_error(f, x, t)[0]),
                             "error_masked": float(equivariance_error(f, x, t, mask="border")[0]),
                             "band": float(changed.mean()), "band_predicted": float(1 - keep.mean()),
                             "outside_mask": int((changed & keep).sum())})
                if seed == cfg["seeds"][0] and depth == cfg["depths"][-1]:
                    maps[mode] = np.asarray(diff)
    return rows, maps


def trained_rows(study: common.Study) -> list[dict]:
    cfg = study.config["trained"]
    x = jnp.asarray(load_arrays("mnist1d").normalized().x_test[:256])
    t = shift([cfg["shift"], -cfg["shift"]], spatial_dims=1)
    rows = []
    for mode in cfg["modes"]:
        base = TrainConfig.merge(TrainConfig(), cfg["base"])
        base = TrainConfig.merge(base, {"steps": cfg["steps"], "model_options": {"padding_mode": mode},
                                        "run_dir": str(study.out / "runs" / mode)})
        result = fit_ensemble(base, cfg["seeds"], progress=study.progress)
        for m, member in enumerate(result.members):
            report = layerwise_equivariance(result.member_model(m), x, t)
            for depth, layer in enumerate(report.rows, start=1):
                rows.append({"padding": mode, "seed": member["seed"], "test_acc": member["test_acc"],
                             "layer": layer.name, "depth": depth, "kind": layer.kind, "error": layer.mean})
    return rows


def run(study: common.Study) -> None:
    rand, maps = random_rows(study.config["random"])
    trained = trained_rows(study)
    common.write_csv(rand, study.out / f"{study.name}.csv")
    common.write_csv(trained, study.out / "trained.csv")
    stats = {k: common.group_stats(rand, ["padding", "depth"], k) for k in ("error", "error_masked", "band", "band_predicted")}
    series = {m: ([s["depth"] for s in stats["error"] if s["padding"] == m],
                  [s["mean"] for s in stats["error"] if s["padding"] == m]) for m in MODES}
    common.line_plot(series, study.out / "random_error.png", xlabel="depth (3x3 convs)", logy=True,
                     ylabel="relative equivariance error", title="Random stacks, input rolled by 3 px (mean over seeds)")
    tstats = common.group_stats(trained, ["padding", "depth", "layer"], "error")
    layers = list(dict.fromkeys(r["layer"] for r in trained))
    modes = study.config["trained"]["modes"]
    tseries = {m: ([s["depth"] for s in tstats if s["padding"] == m], [s["mean"] for s in tstats if s["padding"] == m])
               for m in modes}
    common.line_plot(tseries, study.out / "trained_error.png", xlabel="layer: " + ", ".join(layers), logy=True,
                     ylabel="relative error (equivariance; invariance for pooled)",
                     title="Trained mnist1d_cnn (same padding, global pool), shifts of ±8")
    _band_maps(maps, study)
    pick = lambda key, m, d: next(s for s in stats[key] if s["padding"] == m and s["depth"] == d)  # noqa: E731
    depth = study.config["random"]["depths"][-1]
    table = [{"padding": m, "error": f"{pick('error', m, depth)['mean']:.2e}",
              "error outside the border band": f"{pick('error_masked', m, depth)['mean']:.1e}",
              "positions changed (%)": f"{100 * pick('band', m, depth)['mean']:.1f}",
              "band predicted by the receptive field (%)": f"{100 * pick('band_predicted', m, depth)['mean']:.1f}"}
             for m in MODES]
    acc = common.group_stats([r for r in trained if r["depth"] == 1], ["padding"], "test_acc")
    ttable = [{"padding": m, "test acc (%)": common.fmt(a["mean"], a["std"]),
               **{layer: f"{next(s['mean'] for s in tstats if s['padding'] == m and s['layer'] == layer):.1e}"
                  for layer in layers}} for m, a in zip(modes, sorted(acc, key=lambda a: modes.index(a["padding"])))]
    outside = sum(r["outside_mask"] for r in rand)
    bands = [{"depth": d, **{f"changed, {m} (%)": f"{100 * pick('band', m, d)['mean']:.1f}" for m in MODES},
              "predicted (%)": f"{100 * pick('band_predicted', 'zeros', d)['mean']:.1f}"}
             for d in study.config["random"]["depths"]]
    study.add(
        f"## Random stacks (depth {depth}, input rolled by {study.config['random']['shift']} px in both axes)",
        common.markdown_table(table),
        "![random](random_error.png)\n\n![where the error lives](band_maps.png)",
        "The border band over depth: the share of output positions that differ at all, beside the share the "
        "receptive-field mask excludes.",
        common.markdown_table(bands),
        f"Circular padding is exactly equivariant to circular shifts at every depth. With the other modes the error "
        f"is confined to a border band that widens by one pixel per layer on each side; outside the band that the "
        f"receptive field predicts, {'no output position changed' if outside == 0 else f'{outside} positions CHANGED'} "
        f"(over every mode, depth and seed), so the error there is float rounding.",
        "## Trained networks (error after each layer, mean over seeds)",
        common.markdown_table(ttable),
        "![trained](trained_error.png)",
        "On a length-40 signal a same-padded 3-layer CNN's border band covers most positions, so only circular "
        "padding keeps the trained network's maps (and its pooled features) exactly equivariant to shifts by "
        "multiples of the total stride.",
    )


def _band_maps(maps: dict, study: common.Study) -> None:
    panels = []
    for mode, diff in maps.items():
        v = np.log10(diff + 1e-12)
        panels.append((mode, np.clip(v, -8, None), {"cmap": "magma", "vmin": -8, "vmax": max(float(v.max()), -7)}))
    common.image_panels(panels, study.out / "band_maps.png", size=3.0, suptitle=(
        f"log10 |f(roll x) - roll f(x)| per position, depth {study.config['random']['depths'][-1]}"))


def main(argv=None) -> int:
    return common.main(__file__, __doc__, get_config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
