"""Per-pixel losses for semantic segmentation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from cnnjax.functional import utils


def _check(logits, labels, fn: str):
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"{fn}: labels must have logits' shape without the class axis, {logits.shape[:-1]}; "
                         f"got logits {logits.shape} and labels {labels.shape}")
    return logits, labels


@utils.array_args("logits", "labels")
def pixel_cross_entropy(logits, labels, spatial_dims: int = 2):
    """Softmax cross-entropy averaged over the pixels of each example.

    Args:
      logits: ``(*batch, *spatial, K)``.
      labels: ``(*batch, *spatial)`` integer classes.
      spatial_dims: how many trailing axes of ``labels`` are spatial.

    Returns:
      ``(*batch,)``.

    Example:
      >>> pixel_cross_entropy(jnp.zeros((2, 4, 4, 3)), jnp.zeros((2, 4, 4), int)).round(4)
      Array([1.0986, 1.0986], dtype=float32)
    """
    logits, labels = _check(logits, labels, "pixel_cross_entropy")
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return ce.mean(axis=tuple(range(-spatial_dims, 0)))


@utils.array_args("logits", "labels")
def dice_loss(logits, labels, spatial_dims: int = 2, eps: float = 1.0):
    """Soft Dice loss per example, averaged over classes (Milletari et al. 2016).

    ``1 - mean_k (2 Σ p_k y_k + eps) / (Σ p_k + Σ y_k + eps)`` with ``p = softmax(logits)``
    and ``y`` the one-hot labels, sums over the pixels. ``eps`` keeps classes absent from
    both prediction and label at a Dice of 1.

    Args:
      logits: ``(*batch, *spatial, K)``.
      labels: ``(*batch, *spatial)`` integer classes.
      spatial_dims: how many trailing axes of ``labels`` are spatial.
      eps: smoothing.

    Returns:
      ``(*batch,)`` in ``[0, 1]``.
    """
    logits, labels = _check(logits, labels, "dice_loss")
    p = jax.nn.softmax(logits, -1)
    y = jax.nn.one_hot(labels, logits.shape[-1], dtype=p.dtype)
    axes = tuple(range(-spatial_dims - 1, -1))
    dice = (2 * jnp.sum(p * y, axes) + eps) / (jnp.sum(p, axes) + jnp.sum(y, axes) + eps)
    return 1 - dice.mean(-1)
