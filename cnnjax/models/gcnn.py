"""P4CNN (Cohen & Welling 2016): a group-equivariant CNN that is invariant to 90-degree rotations; and its Z2 twin."""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class P4CNN(Model):
    """A lifting conv, then group convs, each with group batch norm and ReLU; one 2x2 max pool; invariant head.

    The head max-pools over the group axis (rotation-invariant fields), averages over
    positions and applies a linear layer, so the logits are invariant to the group acting
    on the input (exactly, when every spatial size along the way is rotation-symmetric).

    Input ``(*batch, H, W, C)`` with ``H == W``. ``features``: ``lift``, ``gconv2``...,
    ``invariant`` (after group pooling) and ``pre_logits``.

    ``group="z2"`` builds the same network from ordinary convs and batch norms (the
    translation-only baseline, Cohen & Welling's Z2CNN); its group pool is the identity.
    """

    def __init__(self, num_classes: int, in_channels: int, rngs: nnx.Rngs, *, channels: int, depth: int,
                 pool_after: int, padding: int, group: str):
        if depth < 1:
            raise ValueError(f"P4CNN: depth must be >= 1, got depth={depth}")
        self.group, self.pool_after = group, pool_after
        if group == "z2":
            kw = dict(padding=padding, use_bias=False, rngs=rngs)
            lift = conv = lambda a, b: nn.Conv(a, b, (3, 3), **kw)  # noqa: E731
            norm, self.group_pool = nn.BatchNorm, nn.Identity()
        else:
            kw = dict(group=group, padding=padding, use_bias=False, rngs=rngs)
            lift = lambda a, b: nn.LiftingConv(a, b, 3, **kw)  # noqa: E731
            conv = lambda a, b: nn.GroupConv(a, b, 3, **kw)  # noqa: E731
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
