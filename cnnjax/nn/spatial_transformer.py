"""SpatialTransformer (Jaderberg et al. 2015): a network predicts an affine map and the input is resampled by it."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax.functional import utils
from cnnjax.functional.resample import check_sampling
from cnnjax.nn import init
from cnnjax.nn.linear import Linear


class SpatialTransformer(nnx.Module):
    """``y = grid_sample(x, affine_grid(theta(x)))`` with ``theta = head(localization(x))``, learned end to end.

    ``localization`` maps ``(B, H, W, C)`` to ``(B, features)``; the layer owns the
    ``Linear(features, 6)`` head that turns those into the ``(B, 2, 3)`` affine matrix
    (output coordinates to input coordinates, normalised, as :func:`cnnjax.functional.affine_grid`).
    The head starts at zero weights and the identity's bias, so training starts from
    ``y = x``, as in the paper and PyTorch's spatial transformer tutorial.

    Shapes: ``(B, H, W, C) -> (B, *output_size, C)`` (``output_size`` defaults to ``(H, W)``).

    Args:
      localization: any callable or NNX module ``(B, H, W, C) -> (B, features)``.
      features: its output width.
      output_size: the resampled ``(H_out, W_out)``, or None for the input's.
      mode, padding_mode, align_corners: as :func:`cnnjax.functional.grid_sample`.

    Example:
      >>> loc = nnx.Sequential(lambda x: x.reshape(x.shape[0], -1), Linear(64, 8, rngs=nnx.Rngs(0)), jax.nn.relu)
      >>> stn = SpatialTransformer(loc, 8, rngs=nnx.Rngs(1))
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> bool(jnp.allclose(stn(x), x, atol=1e-6))  # the identity at initialisation
      True
    """

    def __init__(self, localization: Callable[[jax.Array], jax.Array], features: int, *,
                 output_size: Sequence[int] | None = None, mode: str = "bilinear", padding_mode: str = "zeros",
                 align_corners: bool = False, rngs: nnx.Rngs | None = None):
        fn = "SpatialTransformer"
        if not callable(localization):
            raise TypeError(f"{fn}: localization must be a callable (B, H, W, C) -> (B, features), got {localization!r}")
        check_sampling(mode, padding_mode, fn)
        if output_size is not None:
            output_size = utils.as_tuple(output_size, 2, "output_size", fn, minimum=1)
        identity = jnp.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        self.localization = localization
        self.head = Linear(features, 6, kernel_init=init.zeros, bias_init=lambda *_: identity, rngs=rngs)
        self.output_size, self.mode, self.padding_mode, self.align_corners = output_size, mode, padding_mode, align_corners

    def theta(self, x: jax.Array) -> jax.Array:
        """The predicted affine matrices: ``(B, 2, 3)``."""
        return self.head(self.localization(x)).reshape(x.shape[0], 2, 3)

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"SpatialTransformer: x must be (B, H, W, C), got x.shape={tuple(x.shape)}")
        size = self.output_size or x.shape[1:3]
        grid = F.affine_grid(self.theta(x), (x.shape[0], *size, x.shape[-1]), self.align_corners)
        return F.grid_sample(x, grid, self.mode, self.padding_mode, self.align_corners)

