"""Squeeze-and-excitation (Hu et al. 2018): channel attention from globally pooled features."""

from __future__ import annotations

from typing import Callable

import jax
from flax import nnx

from cnnjax.functional import utils
from cnnjax.nn import init
from cnnjax.nn.conv import Conv


class SqueezeExcitation(nnx.Module):
    """torchvision's ``SqueezeExcitation``: ``x * scale_activation(fc2(activation(fc1(mean_spatial(x)))))``.

    ``fc1``/``fc2`` are 1x1 convs with biases, named as torchvision names them, so its state dicts load.

    Shapes: ``(N, *spatial, C) -> same``; ``fc1`` ``C -> squeeze_channels``, ``fc2`` back to ``C``.

    Args:
      input_channels: ``C``.
      squeeze_channels: the bottleneck width (MobileNetV3: ``C // 4`` rounded to 8; EfficientNet: a quarter
        of the block's input channels).
      activation: after ``fc1`` (ReLU, or SiLU in EfficientNet).
      scale_activation: the gate (sigmoid, or hard sigmoid in MobileNetV3).
      rngs: optional; the global stream otherwise (:func:`cnnjax.nn.manual_seed`).

    Example:
      >>> se = SqueezeExcitation(16, 4, rngs=nnx.Rngs(0))
      >>> se(jnp.ones((2, 8, 8, 16))).shape
      (2, 8, 8, 16)
    """

    def __init__(self, input_channels: int, squeeze_channels: int, activation: Callable = jax.nn.relu,
                 scale_activation: Callable = jax.nn.sigmoid, *, spatial_dims: int = 2, rngs: nnx.Rngs | None = None):
        rngs = init.layer_rngs(rngs)
        k = (1,) * spatial_dims
        self.fc1 = Conv(input_channels, squeeze_channels, k, rngs=rngs)
        self.fc2 = Conv(squeeze_channels, input_channels, k, rngs=rngs)
        self.activation, self.scale_activation, self.spatial_dims = activation, scale_activation, spatial_dims

    @utils.array_args("x")
    def __call__(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - 1 - self.spatial_dims, x.ndim - 1))
        scale = x.mean(axis=axes, keepdims=True)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return x * scale
