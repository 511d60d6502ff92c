"""Feature visualisation: the input that a unit responds to most, found by gradient ascent on the input.

Activation maximisation (Erhan et al. 2009; for a class score, Simonyan et al. 2013) with the
regularisers that make the result readable: random jitter of the input at every step, an
occasional blur and an L2 penalty (Yosinski et al. 2015), and optionally a decorrelated
Fourier parametrisation of the image with a 1/f spectrum (Olah et al. 2017, "Feature
Visualization"). The whole ascent is one jitted ``lax.scan``, and several units are optimised
at once as one batch.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.viz.figure import finish, image_axes, new_figure, to_display
from cnnjax.viz.probe import probed_call, probed_shapes

PARAMETRIZATIONS = ("fourier", "pixel")


def _fourier_scale(spatial: tuple[int, ...]) -> jnp.ndarray:
    """``1 / |f|`` over the ``rfftn`` frequencies of ``spatial`` (the DC term at the lowest frequency), summing to 1 in square."""
    freqs = [np.fft.fftfreq(n) for n in spatial[:-1]] + [np.fft.rfftfreq(spatial[-1])]
    mesh = np.meshgrid(*freqs, indexing="ij")
    f = np.sqrt(sum(m ** 2 for m in mesh))
    scale = 1.0 / np.maximum(f, 1.0 / max(spatial))
    return jnp.asarray(scale / np.sqrt(np.mean(scale ** 2)), jnp.float32)


def _image(params: jnp.ndarray, spatial: tuple[int, ...], parametrization: str) -> jnp.ndarray:
    """The input ``(K, *spatial, C)`` that ``params`` stand for."""
    if parametrization == "pixel":
        return params
    axes = tuple(range(1, 1 + len(spatial)))
    spectrum = (params[..., 0] + 1j * params[..., 1]) * _fourier_scale(spatial)[None, ..., None]
    return jnp.fft.irfftn(spectrum, s=spatial, axes=axes, norm="ortho")


def _check(fn: str, layer: Any, channels: Any, shape: Any, steps: Any, parametrization: str, jitter: Any,
           blur_every: Any) -> tuple[list[int], tuple[int, ...]]:
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"{fn}: layer must be a layer name (see cnnjax.models.module_paths) or 'logits', got {layer!r}")
    chans = [channels] if isinstance(channels, (int, np.integer)) else channels
    if isinstance(chans, (str, bytes)) or not isinstance(chans, Sequence) or not chans or \
            not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0 for c in chans):
        raise TypeError(f"{fn}: channels must be a channel index or a non-empty list of them (ints >= 0), got {channels!r}")
    shape = utils.as_shape(shape, "shape", fn, min_rank=2)
    if len(shape) > 4:
        raise ValueError(f"{fn}: shape must be one input's (*spatial, C), 1 to 3 spatial dims, got {shape!r}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"{fn}: parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}")
    for name, v, lo in (("steps", steps, 1), ("jitter", jitter, 0), ("blur_every", blur_every, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{fn}: {name} must be an int >= {lo}, got {v!r}")
    return [int(c) for c in chans], shape


def feature_visualization(model: nnx.Module, layer: str, channels: int | Sequence[int], *, shape: Sequence[int],
                          steps: int = 256, lr: float = 0.05, parametrization: str = "fourier", jitter: int = 1,
                          blur_every: int = 0, l2: float = 1e-3, value_range: tuple[float, float] | None = None,
                          init_scale: float = 0.01, seed: int = 0) -> np.ndarray:
    """Inputs that maximise the mean activation of ``channels`` at ``layer``, one per channel.

    For each channel ``c`` it ascends ``J(x) = mean_positions A(x)[..., c] - l2 * mean(x^2)``
    with Adam, in eval mode (BatchNorm statistics, no dropout). At every step the input is
    rolled by a random whole-pixel offset of up to ``jitter`` in each spatial dim, so the image
    cannot exploit one alignment; every ``blur_every`` steps a pixel-parametrised image is
    blurred by a 3-tap binomial filter (0: never). With ``parametrization="fourier"`` the
    image is the inverse real FFT of a learned spectrum scaled by ``1/|f|``, which
    decorrelates the pixels and favours natural-looking, low-frequency patterns. With
    ``value_range=(lo, hi)`` the image is squashed into that range by a sigmoid, as Lucid maps
    images into [0, 1], so it stays within the values the model saw in training.

    Args:
      model: any ``nnx.Module`` taking ``(N, *spatial, C)``.
      layer: the layer's name as :func:`cnnjax.models.module_paths` gives it (``"conv2"``,
        ``"layer3.1"``), or ``"logits"`` for the model's output (then ``channels`` are classes).
      channels: a channel (or class) index, or several: each gets its own image.
      shape: one input's ``(*spatial, C)``, e.g. ``(8, 8, 1)`` or ``(40, 1)``.
      steps, lr: the ascent's length and Adam step size.
      parametrization: "fourier" (default) or "pixel".
      jitter: the largest random shift per step, in pixels (0: none).
      blur_every: blur a pixel-parametrised image every so many steps (0: never).
      l2: the weight of the L2 penalty on the image.
      value_range: ``(lo, hi)`` bounds for the image values, e.g. the training data's range (None: unbounded).
      init_scale: the standard deviation of the random start.
      seed: the start's and the jitter's randomness.

    Returns:
      ``(len(channels), *shape)`` float32 images, in the model's input space (standardised
      units if the model was trained on standardised data).

    Example:
      >>> from cnnjax import models
      >>> net = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
      >>> feature_visualization(net, "conv2", [0, 1, 2], shape=(8, 8, 1), steps=8).shape
      (3, 8, 8, 1)
    """
    fn = "feature_visualization"
    chans, shape = _check(fn, layer, channels, shape, steps, parametrization, jitter, blur_every)
    graphdef, state = nnx.split(model)
    x0 = jax.ShapeDtypeStruct((len(chans), *shape), jnp.float32)
    out = _pick(layer, probed_shapes(graphdef, state, None if layer == "logits" else layer, x0, caller=fn))
    if not hasattr(out, "shape") or out.ndim < 2:
        raise ValueError(f"{fn}: layer {layer!r} must output an array (N, ..., C), got {out}")
    if max(chans) >= out.shape[-1]:
        raise ValueError(f"{fn}: layer {layer!r} has {out.shape[-1]} channels, got channels={chans}")
    if value_range is not None:
        if not (isinstance(value_range, Sequence) and len(value_range) == 2 and float(value_range[0]) < float(value_range[1])):
            raise ValueError(f"{fn}: value_range must be (lo, hi) with lo < hi, got {value_range!r}")
        value_range = (float(value_range[0]), float(value_range[1]))
    return np.asarray(_ascend(graphdef, state, layer, jnp.asarray(chans), shape, steps, float(lr), parametrization,
                              jitter, blur_every, float(l2), value_range, float(init_scale), jax.random.key(seed)))


def _pick(layer: str, outputs: tuple) -> Any:
    """The logits or the layer's output, of :func:`~cnnjax.viz.probe.probed_call`'s pair."""
    return outputs[0] if layer == "logits" else outputs[1]


def _activation(graphdef, state, layer: str, x):
    """The output of ``layer`` (or the logits) for input ``x``, the model in eval mode."""
    probed = None if layer == "logits" else layer
    return _pick(layer, probed_call(graphdef, state, probed, x, caller="feature_visualization"))


@functools.partial(jax.jit, static_argnums=(0, 2, 4, 5, 7, 8, 9, 11))
def _ascend(graphdef, state, layer, chans, shape, steps, lr, parametrization, jitter, blur_every, l2, value_range,
            init_scale, key):
    spatial, k = shape[:-1], chans.shape[0]
    activation = functools.partial(_activation, graphdef, state, layer)
    if parametrization == "pixel":
        pshape = (k, *shape)
    else:
        pshape = (k, *spatial[:-1], spatial[-1] // 2 + 1, shape[-1], 2)
    key, start = jax.random.split(key)
    params = init_scale * jax.random.normal(start, pshape, jnp.float32)
    tx = optax.adam(lr)

    def image(p):
        x = _image(p, spatial, parametrization)
        return x if value_range is None else value_range[0] + (value_range[1] - value_range[0]) * jax.nn.sigmoid(x)

    def objective(p, shift):
        x = image(p)
        a = activation(jnp.roll(x, shift, axis=tuple(range(1, 1 + len(spatial)))))
        a = a.reshape(k, -1, a.shape[-1])
        unit = jnp.take_along_axis(a, chans[:, None, None], axis=-1)[..., 0].mean(-1)
        return -(unit - l2 * jnp.mean(x.reshape(k, -1) ** 2, -1)).sum()

    def step(carry, i):
        p, opt, key = carry
        key, sub = jax.random.split(key)
        shift = jax.random.randint(sub, (len(spatial),), -jitter, jitter + 1)
        grads = jax.grad(objective)(p, shift)
        updates, opt = tx.update(grads, opt, p)
        p = optax.apply_updates(p, updates)
        if parametrization == "pixel" and blur_every:
            blurred = F.blur_pool(p, 3, (1,) * len(spatial))
            p = jnp.where((i + 1) % blur_every == 0, blurred, p)
        return (p, opt, key), None

    (params, _, _), _ = jax.lax.scan(step, (params, tx.init(params), key), jnp.arange(steps))
    return image(params)


@utils.array_args("images")
def plot_feature_visualization(images: Any, path: str | Path | None = None, *, titles: Sequence[str] | None = None,
                               cols: int = 8):
    """One tile per image of :func:`feature_visualization` (each min-max scaled on its own).

    Args:
      images: ``(K, H, W, C)`` (grey or RGB tiles) or ``(K, L, C)`` (1-D signals, drawn as lines).
      path: where to write the PNG.
      titles: one per image (default: the index).
      cols: tiles per row.

    Returns:
      The matplotlib ``Figure``.
    """
    a = np.asarray(images, np.float32)
    if a.ndim not in (3, 4):
        raise ValueError(f"plot_feature_visualization: images must be (K, H, W, C) or (K, L, C), got shape {a.shape}")
    titles = list(titles) if titles is not None else [str(i) for i in range(len(a))]
    if len(titles) != len(a):
        raise ValueError(f"plot_feature_visualization: {len(a)} images but {len(titles)} titles")
    cols = min(cols, len(a))
    fig = new_figure(1.7 * cols, 1.8 * -(-len(a) // cols))
    axes = image_axes(fig, len(a), cols, titles)
    for ax, img in zip(axes, a):
        if a.ndim == 3:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.plot(img)
        else:
            image, cmap = to_display(img)
            ax.imshow(image, cmap=cmap, interpolation="nearest")
    return finish(fig, path)
