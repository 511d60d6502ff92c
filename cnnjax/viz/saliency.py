"""Saliency: which input pixels move a class score. Pure functions of ``(model, x, target)``, batched and jit-able.

Every method scores ``S_i = sum(logits[i, ..., target_i])`` per example (a classifier's logit;
for dense outputs, the class's logits summed over positions) with the model in eval mode,
so examples do not interact and one backward pass serves the whole batch.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.viz.figure import finish, image_axes, new_figure, normalize, to_display
from cnnjax.viz.probe import probed_call, probed_shapes

METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "grad_cam")


def eval_copy(model: nnx.Module) -> nnx.Module:
    """A copy in eval mode (BatchNorm running statistics, no dropout); the caller's model is untouched."""
    m = nnx.merge(*nnx.split(model))
    m.eval()
    return m


def _targets(target, n: int, forward):
    """``(n,)`` int32 targets; ``forward()`` (the logits) runs only when ``target`` is None, to take the prediction."""
    if target is None:
        logits = jax.lax.stop_gradient(forward())
        target = jnp.argmax(logits.reshape(n, -1, logits.shape[-1]).sum(1), -1)
    return jnp.broadcast_to(jnp.asarray(target, jnp.int32), (n,))


def _scores(logits, target):
    """``(N,)``: each example's logit for its target, summed over any positions (dense outputs)."""
    onehot = jax.nn.one_hot(target, logits.shape[-1], dtype=logits.dtype)
    onehot = onehot.reshape((logits.shape[0],) + (1,) * (logits.ndim - 2) + (logits.shape[-1],))
    return jnp.sum(logits * onehot, axis=tuple(range(1, logits.ndim)))


def _input_gradient(m, x, target):
    """``∂S/∂x`` for an eval-mode model ``m`` and resolved ``(N,)`` targets (one compiled program per shape)."""
    graphdef, state = nnx.split(m)
    return _gradient_program(graphdef, state, x, target)


@functools.partial(jax.jit, static_argnums=0)
def _gradient_program(graphdef, state, x, target):
    m = nnx.merge(graphdef, state)
    return jax.grad(lambda z: _scores(m(z), target).sum())(x)


@utils.array_args("x")
def vanilla_gradient(model: nnx.Module, x, target=None):
    """``∂S/∂x`` (Simonyan et al. 2013).

    Args:
      model: a model ``(N, *spatial, C) -> (N, K)`` (or dense ``(N, *spatial, K)``).
      x: ``(N, *spatial, C)``.
      target: class per example, ``(N,)`` or one int; ``None`` takes the predicted class.

    Returns:
      ``(N, *spatial, C)`` gradients.
    """
    m = eval_copy(model)
    return _input_gradient(m, x, _targets(target, x.shape[0], lambda: m(x)))


@utils.array_args("x")
def smoothgrad(model: nnx.Module, x, target=None, *, key=None, samples: int = 25, noise: float = 0.15):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``x + N(0, σ²)`` copies.

    ``σ = noise * (max(x_i) - min(x_i))`` per example, as the paper recommends (10–20%).

    Args:
      model, x, target: as in :func:`vanilla_gradient`.
      key: PRNG key for the noise (default ``jax.random.key(0)``).
      samples: noisy copies per example.
      noise: noise level relative to each example's range.

    Returns:
      ``(N, *spatial, C)`` averaged gradients.
    """
    m = eval_copy(model)
    key = jax.random.key(0) if key is None else key
    target = _targets(target, x.shape[0], lambda: m(x))
    axes = tuple(range(1, x.ndim))
    sigma = noise * (x.max(axes, keepdims=True) - x.min(axes, keepdims=True))

    def one(k):
        return _input_gradient(m, x + sigma * jax.random.normal(k, x.shape, x.dtype), target)

    return jax.lax.map(one, jax.random.split(key, samples)).mean(0)


@utils.array_args("x", "baseline")
def integrated_gradients(model: nnx.Module, x, target=None, *, baseline=None, steps: int = 32):
    """Integrated gradients (Sundararajan et al. 2017): ``(x - x') ⊙ ∫₀¹ ∂S/∂x (x' + α(x - x')) dα``.

    The integral uses the midpoint rule with ``steps`` points. Completeness holds up to that
    quadrature error: the attributions of an example sum to ``S(x) - S(x')``.

    Args:
      model, x, target: as in :func:`vanilla_gradient`.
      baseline: ``x'``, broadcastable to ``x`` (default zeros: for standardised inputs, the mean image).
      steps: quadrature points.

    Returns:
      ``(N, *spatial, C)`` attributions.
    """
    m = eval_copy(model)
    baseline = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    target = _targets(target, x.shape[0], lambda: m(x))
    alphas = (jnp.arange(steps, dtype=x.dtype) + 0.5) / steps
    grads = jax.lax.map(lambda a: _input_gradient(m, baseline + a * (x - baseline), target), alphas)
    return (x - baseline) * grads.mean(0)


@utils.array_args("x")
def grad_cam(model: nnx.Module, x, target=None, *, layer: str, resize: bool = True):
    """Grad-CAM (Selvaraju et al. 2017) on the output ``A`` of a named layer.

    ``L = ReLU(Σ_k α_k A_k)`` with ``α_k`` the spatial mean of ``∂S/∂A_k``; upsampled
    (bilinear) to the input's size.

    Args:
      model, x, target: as in :func:`vanilla_gradient`.
      layer: the layer's name as :func:`cnnjax.models.module_paths` gives it (``"conv3"``, ``"layer4"``,
        ``"layer4.1"``, ``"stages.2"``): usually the last conv stage.
      resize: upsample the map to the input's spatial size.

    Returns:
      ``(N, *spatial)`` maps (at the layer's resolution if ``resize=False``).
    """
    graphdef, state = nnx.split(model)

    def run(delta):
        return probed_call(graphdef, state, layer, x, delta, caller="grad_cam")

    logits, acts = probed_shapes(graphdef, state, layer, x, caller="grad_cam")
    if acts is None or acts.ndim < 3:
        raise ValueError(f"grad_cam: layer {layer!r} must output a (N, *spatial, C) map, got "
                         f"{None if acts is None else acts.shape}")
    target = _targets(target, x.shape[0], lambda: run(None)[0])

    def score(delta):
        out, a = run(delta)
        return _scores(out, target).sum(), a

    grads, acts = jax.grad(score, has_aux=True)(jnp.zeros(acts.shape, acts.dtype))
    spatial = tuple(range(1, acts.ndim - 1))
    alpha = grads.mean(spatial, keepdims=True)
    cam = jax.nn.relu(jnp.sum(alpha * acts, -1))
    if resize:
        cam = F.resize(cam[..., None], x.shape[1:-1], "bilinear")[..., 0]
    return cam


@utils.array_args("x")
def saliency(model: nnx.Module, x, target=None, method: str = "vanilla", **options):
    """A per-position saliency map by any of :data:`METHODS`.

    Gradient methods are reduced over channels as their papers show them: ``max_c |g|``
    for vanilla and SmoothGrad, ``Σ_c`` of the attributions for integrated gradients;
    Grad-CAM is already one map.

    Args:
      model, x, target: as in :func:`vanilla_gradient`.
      method: "vanilla", "smoothgrad", "integrated_gradients" or "grad_cam".
      **options: passed to the method (``layer=`` for Grad-CAM, ``samples``, ``steps``...).

    Returns:
      ``(N, *spatial)``.

    Example:
      >>> from cnnjax import models
      >>> net = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
      >>> saliency(net, jnp.ones((2, 8, 8, 1)), target=3).shape
      (2, 8, 8)
    """
    if method == "vanilla":
        return jnp.abs(vanilla_gradient(model, x, target)).max(-1)
    if method == "smoothgrad":
        return jnp.abs(smoothgrad(model, x, target, **options)).max(-1)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, **options).sum(-1)
    if method == "grad_cam":
        return grad_cam(model, x, target, **options)
    raise ValueError(f"saliency: method must be one of {', '.join(METHODS)}, got {method!r}")


@utils.array_args("images")
def plot_saliency(images, maps, path: str | Path | None = None, *, titles: Any = None, alpha: float = 0.55,
                  cmap: str = "jet"):
    """Each image beside its saliency overlay (map min-max scaled per image).

    Args:
      images: ``(N, H, W[, C])``.
      maps: ``(N, H, W)``, or a dict ``{method: (N, H, W)}`` for one column per method.
      titles: a title per image (e.g. ``"label 3"``).

    Returns:
      The matplotlib ``Figure`` (rows: images; columns: input, then each map).
    """
    maps = maps if isinstance(maps, dict) else {"saliency": maps}
    images = np.asarray(images)
    n, cols = len(images), 1 + len(maps)
    fig = new_figure(1.9 * cols, 1.9 * n)
    heads = [titles[i] if titles is not None else "input" for i in range(n)]
    names = [h for i in range(n) for h in [heads[i], *maps]]
    axes = image_axes(fig, n * cols, cols, names)
    for i in range(n):
        image, gray = to_display(images[i])
        axes[i * cols].imshow(image, cmap=gray, interpolation="nearest")
        for j, m in enumerate(maps.values(), start=1):
            axes[i * cols + j].imshow(image, cmap=gray, interpolation="nearest")
            axes[i * cols + j].imshow(normalize(np.asarray(m[i])), cmap=cmap, alpha=alpha, interpolation="bilinear")
    return finish(fig, path)
