"""Dense-prediction models: U-Net (Ronneberger et al. 2015) and FCN (Long et al. 2015)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import create, register


class DoubleConv(nnx.Module):
    """(3-wide conv, BatchNorm, ReLU) twice; 'same' padding so sizes only change by pooling."""

    def __init__(self, cin, cout, n, rngs, batch_norm=True):
        def block(a, b):
            layers = [nn.Conv(a, b, (3,) * n, padding=1, use_bias=not batch_norm, rngs=rngs)]
            return layers + ([nn.BatchNorm(b)] if batch_norm else []) + [jax.nn.relu]

        self.layers = nnx.Sequential(*block(cin, cout), *block(cout, cout))

    def __call__(self, x):
        return self.layers(x)


def _match(x, like, n):
    """Zero-pad ``x``'s spatial dims up to ``like``'s (odd sizes lose a pixel to pooling)."""
    pads = [(0, b - a) for a, b in zip(x.shape[-n - 1 : -1], like.shape[-n - 1 : -1])]
    return jnp.pad(x, [(0, 0)] * (x.ndim - n - 1) + pads + [(0, 0)])


class UNet(Model):
    """U-Net: a contracting path of DoubleConvs and max pools, an expanding path of 2x transposed
    convs, each concatenated with the encoder map of the same scale, and a 1x1 conv to classes.

    Input ``(*batch, *spatial, C)`` with 1 or 2 spatial dims; output ``(*batch, *spatial, num_classes)``
    per-position logits. ``features``: ``enc1``..``encD``, ``bottleneck``, ``dec1``..``decD``,
    ``pre_logits`` (the last decoder map).
    """

    head_path = ("head",)

    def __init__(self, num_classes, in_channels, rngs, *, depth=4, width=64, spatial_dims=2, batch_norm=True):
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"unet: spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        n = self.n = spatial_dims
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nnx.List([DoubleConv(a, b, n, rngs, batch_norm) for a, b in zip([in_channels] + widths[:-2], widths[:-1])])
        self.bottleneck = DoubleConv(widths[-2], widths[-1], n, rngs, batch_norm)
        self.up = nnx.List([nn.ConvTranspose(widths[i + 1], widths[i], (2,) * n, stride=2, rngs=rngs) for i in reversed(range(depth))])
        self.dec = nnx.List([DoubleConv(2 * widths[i], widths[i], n, rngs, batch_norm) for i in reversed(range(depth))])
        self.head = nn.Conv(width, num_classes, (1,) * n, rngs=rngs)

    def forward(self, x):
        features, skips = {}, []
        for i, block in enumerate(self.down):
            x = block(x)
            features[f"enc{i + 1}"] = x
            skips.append(x)
            x = F.max_pool(x, (2,) * self.n)
        x = self.bottleneck(x)
        features["bottleneck"] = x
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            skip = skips.pop()
            x = dec(jnp.concatenate([skip, _match(up(x), skip, self.n)], axis=-1))
            features[f"dec{i + 1}"] = x
        features["pre_logits"] = x
        return self.head(x), features


@register()
def unet(*, num_classes: int = 2, in_channels: int = 1, depth: int = 4, width: int = 64, spatial_dims: int = 2,
         batch_norm: bool = True, rngs: nnx.Rngs) -> UNet:
    """U-Net with configurable depth and width, for 1-D or 2-D (or 3-D) inputs."""
    return UNet(num_classes, in_channels, rngs, depth=depth, width=width, spatial_dims=spatial_dims, batch_norm=batch_norm)


class FCN(Model):
    """Fully convolutional segmentation: a zoo backbone's last feature map, torchvision's FCN head
    (3x3 conv to C/4, BatchNorm, ReLU, dropout 0.1, 1x1 conv to classes), bilinear upsampling to the input.

    Output ``(*batch, H, W, num_classes)``. ``features``: the backbone's, plus ``head`` (low-resolution logits).
    """

    head_path = ("classifier",)

    def __init__(self, backbone: Model, feature: str, channels: int, num_classes: int, rngs: nnx.Rngs):
        self.backbone, self.feature = backbone, feature
        mid = max(channels // 4, 1)
        self.head_conv = nnx.Sequential(
            nn.Conv(channels, mid, (3, 3), padding=1, use_bias=False, rngs=rngs), nn.BatchNorm(mid), jax.nn.relu,
            nn.Dropout(0.1, rngs=rngs),
        )
        self.classifier = nn.Conv(mid, num_classes, (1, 1), rngs=rngs)

    def forward(self, x):
        _, features = self.backbone(x, return_features=True)
        low = self.classifier(self.head_conv(features[self.feature]))
        features = {**features, "head": low}
        return F.resize(low, x.shape[-3:-1], "bilinear"), features


@register()
def fcn(*, num_classes: int = 21, in_channels: int = 3, backbone: str = "resnet18", feature: str | None = None,
        rngs: nnx.Rngs, **backbone_options: Any) -> FCN:
    """FCN on a zoo backbone (default resnet18's ``layer4``, output stride 32).

    ``feature`` picks the backbone's feature map (default: its last spatial one).
    """
    net = create(backbone, num_classes=1, in_channels=in_channels, rngs=rngs, **backbone_options)
    names: list[str] = []

    def trace(m, a):  # a list keeps the forward order that a returned dict would lose (pytrees sort keys)
        feats = m(a, return_features=True)[1]
        names.extend(feats)
        return list(feats.values())

    out = nnx.eval_shape(trace, net, jax.ShapeDtypeStruct((1, 64, 64, in_channels), jnp.float32))
    shapes = dict(zip(names, out))
    spatial = [k for k, v in shapes.items() if v.ndim == 4 and k != "pooled"]
    if feature is None:
        feature = spatial[-1]
    if feature not in spatial:
        raise ValueError(f"fcn: backbone {backbone!r} has no spatial feature {feature!r}; choose from {spatial}")
    return FCN(net, feature, shapes[feature].shape[-1], num_classes, rngs)
