"""Detection the classic way: slide a window over the image, at several scales."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from cnnjax import functional as F
from cnnjax.functional import utils


def _check_image(image, fn: str):
    image = jnp.asarray(image)
    if image.ndim < 3:
        raise ValueError(f"{fn}: image must be (*batch, H, W, C), got shape {image.shape}")
    return image


def sliding_windows(image, window: int | Sequence[int], stride: int | Sequence[int] = 1):
    """Every ``window``-sized crop of ``image`` taken every ``stride`` pixels (no padding).

    Args:
      image: ``(*batch, H, W, C)``.
      window: ``(wh, ww)`` or an int.
      stride: ``(sh, sw)`` or an int.

    Returns:
      ``(*batch, nH, nW, wh, ww, C)`` with ``nH = (H - wh) // sh + 1`` (likewise ``nW``);
      window ``[i, j]`` is ``image[..., i*sh : i*sh + wh, j*sw : j*sw + ww, :]``.

    Example:
      >>> sliding_windows(jnp.zeros((32, 32, 1)), 16, 8).shape
      (3, 3, 16, 16, 1)
    """
    image = _check_image(image, "sliding_windows")
    window = utils.as_tuple(window, 2, "window", "sliding_windows", minimum=1)
    stride = utils.as_tuple(stride, 2, "stride", "sliding_windows", minimum=1)
    h, w = image.shape[-3:-1]
    if window[0] > h or window[1] > w:
        raise ValueError(f"sliding_windows: window {window} is larger than the image's (H, W) = {(h, w)}")
    p = _unfold(image, window, stride)  # (*batch, nH, nW, wh*ww*C), offset-major
    return p.reshape(p.shape[:-1] + tuple(window) + image.shape[-1:])


@functools.partial(jax.jit, static_argnums=(1, 2))
def _unfold(image, window, stride):  # jitted: a window is wh*ww strided views, each its own compile when eager
    return F.unfold(image, window, stride=stride)


def sliding_window_scores(classify: Callable, image, window: int | Sequence[int], stride: int | Sequence[int] = 1):
    """Run ``classify`` on every window: the brute-force dense score map.

    A fully convolutional classifier applied to the whole image computes the same map
    at once (with ``stride`` equal to its total stride), sharing the work between
    overlapping windows; the tests check the two agree.

    Args:
      classify: ``(n, wh, ww, C) -> (n, K)`` scores (a zoo model, or any function).
      image: ``(*batch, H, W, C)``.
      window, stride: as in :func:`sliding_windows`.

    Returns:
      ``(*batch, nH, nW, K)``.
    """
    crops = sliding_windows(image, window, stride)
    lead = crops.shape[:-3]
    scores = classify(crops.reshape((-1,) + crops.shape[-3:]))
    return scores.reshape(lead + scores.shape[-1:])


def image_pyramid(image, scales: Sequence[float], method: str = "bilinear") -> list:
    """The image resized by each scale, for detection across scales with one fixed-size window.

    Args:
      image: ``(*batch, H, W, C)``.
      scales: factors > 0; level ``k`` has size ``(round(H * s_k), round(W * s_k))``.
      method: any :func:`cnnjax.functional.resize` method.

    Returns:
      A list of ``(*batch, H_k, W_k, C)`` arrays, one per scale.

    Example:
      >>> [p.shape for p in image_pyramid(jnp.zeros((32, 32, 1)), [1.0, 0.5])]
      [(32, 32, 1), (16, 16, 1)]
    """
    image = _check_image(image, "image_pyramid")
    if not len(scales) or any(s <= 0 for s in scales):
        raise ValueError(f"image_pyramid: scales must be a non-empty list of factors > 0, got {list(scales)}")
    h, w = image.shape[-3:-1]
    return [F.resize(image, (max(1, round(h * s)), max(1, round(w * s))), method) for s in scales]
