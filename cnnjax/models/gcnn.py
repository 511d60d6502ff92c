"""Group-equivariant CNNs: P4CNN (Cohen & Welling 2016), invariant to 90-degree rotations, its Z2 twin, and the
C_N / D_N family ``gcnn`` (C8, C16, D8...: Weiler & Cesa 2019) at matched parameter counts."""

from __future__ import annotations

import math

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.functional.group import on_grid
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class P4CNN(Model):
    """A lifting conv, then group convs, each with group batch norm and ReLU; one 2x2 max pool; invariant head.

    The head max-pools over the group axis (rotation-invariant fields), averages over
    positions and applies a linear layer, so the logits are invariant to the group acting
    on the input (exactly, when every spatial size along the way is rotation-symmetric).

    Input ``(*batch, H, W, C)`` with ``H == W``. ``features``: ``lift``, ``gconv2``...,
    ``invariant`` (after group pooling) and ``pre_logits``.

    ``group`` is any "C<N>"/"D<N>" (see :mod:`cnnjax.functional.group`); ``group="z2"`` builds
    the same network from ordinary convs and batch norms (the translation-only baseline,
    Cohen & Welling's Z2CNN); its group pool is the identity.
    """

    def __init__(self, num_classes: int, in_channels: int, rngs: nnx.Rngs, *, channels: int, depth: int,
                 pool_after: int, padding: int, group: str, kernel_size: int = 3,
                 padding_mode: str = "zeros", max_frequency: int | None = None):
        if depth < 1:
            raise ValueError(f"P4CNN: depth must be >= 1, got depth={depth}")
        self.group, self.pool_after = group, pool_after
        if group == "z2":
            kw = dict(padding=padding, padding_mode=padding_mode, use_bias=False, rngs=rngs)
            lift = conv = lambda a, b: nn.Conv(a, b, (kernel_size, kernel_size), **kw)  # noqa: E731
            norm, self.group_pool = nn.BatchNorm, nn.Identity()
        else:
            kw = dict(group=group, padding=padding, padding_mode=padding_mode, use_bias=False, rngs=rngs,
                      max_frequency=None if on_grid(group) else max_frequency)
            lift = lambda a, b: nn.LiftingConv(a, b, kernel_size, **kw)  # noqa: E731
            conv = lambda a, b: nn.GroupConv(a, b, kernel_size, **kw)  # noqa: E731
            norm = lambda c: nn.GroupBatchNorm(c, group=group)  # noqa: E731
            self.group_pool = nn.GroupPool(group, "max")
        self.stage_names = ("lift",) + tuple(f"gconv{i}" for i in range(2, depth + 1))
        self.lift = nnx.Sequential(lift(in_channels, channels), norm(channels), jax.nn.relu)
        for name in self.stage_names[1:]:
            setattr(self, name, nnx.Sequential(conv(channels, channels), norm(channels), jax.nn.relu))
        self.pool = nn.MaxPool((2, 2))
        self.head = nn.Linear(channels, num_classes, rngs=rngs)

    def forward(self, x):
        if x.shape[-3] != x.shape[-2]:
            raise ValueError(f"P4CNN: input must be square to be rotated onto itself, got x.shape={tuple(x.shape)}")
        features = {}
        for i, name in enumerate(self.stage_names, start=1):
            x = getattr(self, name)(x)
            if i == self.pool_after:
                x = self.pool(x)
            features[name] = x
        x = self.group_pool(x)
        features["invariant"] = x
        x = F.global_avg_pool(x, spatial_dims=2)
        features["pre_logits"] = x
        return self.head(x), features


@register()
def p4cnn(*, num_classes: int = 10, in_channels: int = 1, channels: int = 10, depth: int = 7, pool_after: int = 2,
          padding: int = 0, group: str = "p4", rngs: nnx.Rngs) -> P4CNN:
    """P4CNN after Cohen & Welling (2016): 3x3 convs, 10 fields per layer, BN + ReLU, a max pool after layer 2.

    ``depth`` conv layers (the first lifts to the group); the defaults fit 28x28 inputs
    with valid convs (28 -> 26 -> 24 -> 12 -> ... -> 2). For small images (8x8 digits) use
    ``padding=1``. ``group="p4m"`` adds mirrors (8 elements). 21,940 params at the defaults (p4m: 43,540).
    """
    return P4CNN(num_classes, in_channels, rngs, channels=channels, depth=depth, pool_after=pool_after,
                 padding=padding, group=group)


@register()
def z2cnn(*, num_classes: int = 10, in_channels: int = 1, channels: int = 20, depth: int = 7, pool_after: int = 2,
          padding: int = 0, rngs: nnx.Rngs) -> P4CNN:
    """Cohen & Welling's Z2CNN: P4CNN's architecture with ordinary convs (22,270 params at the defaults).

    20 channels instead of 10 give about P4CNN's parameter count (21,940), so the two
    compare at matched size. Translation-equivariant only: no rotation invariance.
    """
    return P4CNN(num_classes, in_channels, rngs, channels=channels, depth=depth, pool_after=pool_after,
                 padding=padding, group="z2")


def matched_channels(group: str, z2_channels: int = 20, kernel_size: int = 3, max_frequency: int | None = None) -> int:
    """Fields per layer that give a group conv about the parameters of a Z2 conv with ``z2_channels`` channels.

    A group conv has ``M * C^2 * |G|`` weights (``M`` = ``k * k`` pixels on the grid, or the
    steerable basis' size off it), a Z2 conv ``k * k * C_z2^2``: ``C = round(C_z2 * sqrt(k k / (M |G|)))``.

    Example:
      >>> [matched_channels(g) for g in ("C4", "D4", "C8", "C16", "D8")]
      [10, 7, 9, 6, 6]
    """
    if group == "z2":
        return z2_channels
    m = kernel_size**2 if on_grid(group) else F.steerable.filter_basis(kernel_size, max_frequency).shape[-1]
    return max(1, round(z2_channels * math.sqrt(kernel_size**2 / (m * F.group_order(group)))))


@register()
def gcnn(*, group: str = "C8", num_classes: int = 10, in_channels: int = 1, channels: int | None = None, depth: int = 7,
         pool_after: int = 2, padding: int = 0, kernel_size: int = 3, padding_mode: str = "zeros",
         max_frequency: int | None = None, rngs: nnx.Rngs) -> P4CNN:
    """P4CNN's architecture over any rotation group: ``group`` "C<N>" or "D<N>" (C8, C16, D8...) or "z2".

    ``channels`` defaults to :func:`matched_channels`: about Z2CNN's parameter count (22,270 with
    20 channels) for every group. Off the pixel grid (N not dividing 4) the convs learn
    coefficients of a steerable filter basis (:mod:`cnnjax.functional.steerable`), and the
    logits are invariant to quarter turns exactly and to the other rotations of the group approximately.
    23,608 params at the defaults (C8, 9 fields).

    For the smallest error at angles off the grid: ``max_frequency=1`` (a band-limited basis, used
    by off-grid groups only), ``pool_after=0`` (no strided pool: its lattice does not turn with
    the image), and ``padding_mode="replicate"`` when the images' background is not zero after
    normalising (zero padding then draws a square frame that only quarter turns map to itself).
    """
    channels = channels or matched_channels(group, kernel_size=kernel_size, max_frequency=max_frequency)
    return P4CNN(num_classes, in_channels, rngs, channels=channels, depth=depth, pool_after=pool_after, padding=padding,
                 group=group, kernel_size=kernel_size, padding_mode=padding_mode, max_frequency=max_frequency)
