"""Data augmentation as pure, jit-able functions on batches ``(N, *spatial, C)``, one random draw per example.

Compose them with :func:`augment`; ``spec`` strings name them for configs and the CLI.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from cnnjax.functional import utils


def _per_example(fn: Callable) -> Callable:
    def batched(key: jax.Array, x: jax.Array, *args, **kwargs) -> jax.Array:
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(lambda k, xi: fn(k, xi, *args, **kwargs))(keys, x)

    batched.__doc__ = fn.__doc__
    batched.__name__ = fn.__name__
    return batched


def _spatial_axes(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(x.ndim - 1))  # one example: (*spatial, C)


@_per_example
def translate(key, x, max_shift: int = 4, mode: str = "zeros"):
    """Shift each example by an integer offset in ``[-max_shift, max_shift]`` per spatial dim.

    ``mode="circular"`` rolls (a group action: exactly invertible); ``"zeros"`` fills what enters with 0.
    """
    axes = _spatial_axes(x)
    shifts = jax.random.randint(key, (len(axes),), -max_shift, max_shift + 1)
    if mode == "circular":
        return jnp.roll(x, shifts, axis=axes)
    pad = [(max_shift, max_shift)] * len(axes) + [(0, 0)]
    big = jnp.pad(x, pad)
    start = tuple(max_shift - s for s in shifts) + (0,)
    return jax.lax.dynamic_slice(big, start, x.shape)


@_per_example
def random_crop(key, x, padding: int = 4):
    """Pad by ``padding`` with zeros, then crop back to the original size at a random offset (the CIFAR recipe)."""
    axes = _spatial_axes(x)
    big = jnp.pad(x, [(padding, padding)] * len(axes) + [(0, 0)])
    start = tuple(jax.random.randint(key, (len(axes),), 0, 2 * padding + 1)) + (0,)
    return jax.lax.dynamic_slice(big, start, x.shape)


@_per_example
def horizontal_flip(key, x, p: float = 0.5):
    """Mirror the last spatial dim (width) with probability ``p``."""
    return jnp.where(jax.random.bernoulli(key, p), jnp.flip(x, axis=x.ndim - 2), x)


@_per_example
def rotate90(key, x):
    """Rotate 2-D examples by a random multiple of 90 degrees (needs square images)."""
    k = jax.random.randint(key, (), 0, 4)
    return jax.lax.switch(k, [lambda a, i=i: jnp.rot90(a, i, axes=(0, 1)) for i in range(4)], x)


@_per_example
def brightness_contrast(key, x, brightness: float = 0.2, contrast: float = 0.2):
    """``(x - mean) * c + mean + b`` with ``c ~ U[1-contrast, 1+contrast]`` and ``b ~ U[-brightness, brightness]``."""
    kb, kc = jax.random.split(key)
    b = jax.random.uniform(kb, (), minval=-brightness, maxval=brightness)
    c = jax.random.uniform(kc, (), minval=1 - contrast, maxval=1 + contrast)
    mean = jnp.mean(x)
    return (x - mean) * c + mean + b


AUGMENTATIONS = {
    "translate": translate,
    "translate_circular": lambda key, x: translate(key, x, mode="circular"),
    "crop": random_crop,
    "flip": horizontal_flip,
    "rot90": rotate90,
    "color": brightness_contrast,
}


def augment(spec: str | Sequence[str]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Compose named augmentations, e.g. ``augment("crop,flip")``: ``(key, batch) -> batch``.

    Example:
      >>> f = augment("crop,flip")
      >>> f(jax.random.key(0), jnp.ones((8, 32, 32, 3))).shape
      (8, 32, 32, 3)
    """
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}")
    fns = [AUGMENTATIONS[n] for n in names]

    def apply(key, x):
        x = utils.as_array(x, "augment", "x")
        if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,))):
            raise TypeError(f"augment: key must be a jax.random key, got {type(key).__name__} {key!r:.60}; "
                            "the augmentation is called as f(key, batch)")
        for k, fn in zip(jax.random.split(key, max(len(fns), 1)), fns):
            x = fn(k, x)
        return x

    return apply


@utils.array_args("x")
def tta_predict(predict: Callable[[jax.Array], jax.Array], x: jax.Array, *, flips: bool = True, shifts: int = 0) -> jax.Array:
    """Test-time augmentation: average ``softmax(predict(view))`` over the identity, a horizontal flip,
    and circular shifts by ``+-shifts`` along each spatial dim.

    Returns the averaged probabilities ``(N, classes)``.
    """
    views = [x]
    if flips:
        views.append(jnp.flip(x, axis=x.ndim - 2))
    for axis in range(1, x.ndim - 1):
        for s in ((shifts, -shifts) if shifts else ()):
            views.append(jnp.roll(x, s, axis=axis))
    return jnp.mean(jnp.stack([jax.nn.softmax(predict(v), axis=-1) for v in views]), axis=0)
