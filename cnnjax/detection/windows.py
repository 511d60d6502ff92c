"""Detection the classic way: slide a window over the image, at several scales."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import functional as F
from cnnjax.detection.nms import select_detections
from cnnjax.functional import utils


def _check_image(image, fn: str):
    if image.ndim < 3:
        raise ValueError(f"{fn}: image must be (*batch, H, W, C), got shape {image.shape}")
    return image


@utils.array_args("image")
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
    return _crops(image, window, stride)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _crops(image, window, stride):
    """One dynamic slice per window origin, vmapped: the program's size does not grow with the window's area."""
    h, w = image.shape[-3:-1]
    rows = jnp.arange((h - window[0]) // stride[0] + 1) * stride[0]
    cols = jnp.arange((w - window[1]) // stride[1] + 1) * stride[1]
    lead = image.ndim - 3

    def crop(i, j):
        start = (0,) * lead + (i, j, 0)
        return jax.lax.dynamic_slice(image, start, image.shape[:lead] + tuple(window) + image.shape[-1:])

    out = jax.vmap(jax.vmap(crop, in_axes=(None, 0)), in_axes=(0, None))(rows, cols)  # (nH, nW, *batch, wh, ww, C)
    return jnp.moveaxis(out, (0, 1), (lead, lead + 1))


@utils.array_args("image")
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


@utils.array_args("image")
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
    return [_resize(image, (max(1, round(h * s)), max(1, round(w * s))), method) for s in scales]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _resize(image, size, method):  # one program per level: eager resize dispatches each gather and weight
    return F.resize(image, size, method)


def window_boxes(level_size: Sequence[int], image_size: Sequence[int], window: Sequence[int],
                 stride: Sequence[int]) -> np.ndarray:
    """Every window of a pyramid level as a box in the original image's pixels: ``(nH, nW, 4)`` xyxy.

    Window ``[i, j]`` of a level of size ``(H_k, W_k)`` covers ``[j sw, j sw + ww) x [i sh, i sh + wh)``
    there; dividing by the level's scale ``(W_k / W, H_k / H)`` maps it back.

    Example:
      >>> window_boxes((16, 16), (32, 32), (8, 8), (8, 8))[1, 0].tolist()  # a half-size level: boxes twice as big
      [0.0, 16.0, 16.0, 32.0]
    """
    (hk, wk), (h, w) = level_size, image_size
    n_h, n_w = (hk - window[0]) // stride[0] + 1, (wk - window[1]) // stride[1] + 1
    y0, x0 = np.meshgrid(np.arange(n_h) * stride[0] * (h / hk), np.arange(n_w) * stride[1] * (w / wk), indexing="ij")
    return np.stack([x0, y0, x0 + window[1] * (w / wk), y0 + window[0] * (h / hk)], axis=-1).astype(np.float32)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _select_batch(boxes, scores, classes, iou_threshold, max_outputs, score_threshold, class_agnostic):
    return jax.vmap(lambda b, s, c: select_detections(b, s, c, iou_threshold, max_outputs, score_threshold,
                                                      class_agnostic=class_agnostic))(boxes, scores, classes)


@utils.array_args("image")
def multiscale_detect(classify: Callable, image, window: int | Sequence[int], stride: int | Sequence[int],
                      scales: Sequence[float], *, background: int | None = None, score_threshold: float = 0.5,
                      iou_threshold: float = 0.3, max_outputs: int = 20, class_agnostic: bool = False,
                      method: str = "bilinear"):
    """Detection across scales: score a fixed window at every position of every pyramid level, then NMS.

    The classic pipeline of the lectures: :func:`image_pyramid` shrinks (or enlarges) the image,
    :func:`sliding_window_scores` classifies every window of every level, each window is mapped
    back to a box in the original image (:func:`window_boxes`), and non-maximum suppression
    across all levels removes the duplicates that neighbouring positions and scales produce.

    Args:
      classify: ``(n, wh, ww, C) -> (n, K)`` class scores (e.g. probabilities) for windows.
      image: ``(H, W, C)`` or ``(B, H, W, C)``.
      window, stride: the window and its step, in pyramid-level pixels.
      scales: pyramid factors; at scale ``s`` the window covers ``window / s`` image pixels.
      background: a class index that means "no object" (never reported), or None.
      score_threshold: windows scoring at or below this are dropped.
      iou_threshold: NMS overlap threshold.
      max_outputs: the number of detection slots per image.
      class_agnostic: suppress across classes too (default: per class).
      method: the pyramid's :func:`cnnjax.functional.resize` method.

    Returns:
      ``boxes (*batch, M, 4)`` xyxy image pixels, ``scores (*batch, M)``, ``classes (*batch, M)``
      with ``M = max_outputs``; unused slots have class -1 and score 0 (as :func:`detect`).

    Example:
      >>> bright = lambda w: jnp.stack([1 - w.mean((1, 2, 3)), w.mean((1, 2, 3))], -1)  # class 1: a bright window
      >>> img = jnp.zeros((32, 32, 1)).at[8:24, 8:24].set(1.0)
      >>> boxes, scores, classes = multiscale_detect(bright, img, 8, 4, [0.5, 1.0], background=0, score_threshold=0.9)
      >>> boxes[0].tolist(), float(scores[0]), int(classes[0])
      ([8.0, 8.0, 24.0, 24.0], 1.0, 1)
    """
    fn = "multiscale_detect"
    image = _check_image(image, fn)
    if image.ndim not in (3, 4):
        raise ValueError(f"{fn}: image must be (H, W, C) or (B, H, W, C), got shape {image.shape}")
    window = utils.as_tuple(window, 2, "window", fn, minimum=1)
    stride = utils.as_tuple(stride, 2, "stride", fn, minimum=1)
    single = image.ndim == 3
    batch = image[None] if single else image
    size = batch.shape[1:3]
    boxes, scores = [], []
    for level in image_pyramid(batch, scales, method):
        if level.shape[1] < window[0] or level.shape[2] < window[1]:
            continue  # the window no longer fits this small a level
        s = sliding_window_scores(classify, level, window, stride)  # (B, nH, nW, K)
        b = window_boxes(level.shape[1:3], size, window, stride)
        boxes.append(jnp.broadcast_to(jnp.asarray(b), s.shape[:3] + (4,)).reshape(s.shape[0], -1, 4))
        scores.append(s.reshape(s.shape[0], -1, s.shape[-1]))
    if not boxes:
        raise ValueError(f"{fn}: the window {window} is larger than every pyramid level of an image of size {size} "
                         f"at scales {list(scales)}")
    boxes, scores = jnp.concatenate(boxes, 1), jnp.concatenate(scores, 1)
    if background is not None:
        if not 0 <= background < scores.shape[-1]:
            raise ValueError(f"{fn}: background must be a class index in [0, {scores.shape[-1]}), got {background}")
        scores = scores.at[..., background].set(-jnp.inf)
    classes, best = jnp.argmax(scores, -1).astype(jnp.int32), jnp.max(scores, -1)

    out = _select_batch(boxes, best, classes, float(iou_threshold), int(max_outputs), float(score_threshold),
                        bool(class_agnostic))
    return tuple(o[0] for o in out) if single else out
