"""Inception v3 (Szegedy et al. 2016), torchvision's layout and module names; 299x299 input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class BasicConv2d(nnx.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU."""

    def __init__(self, cin, cout, kernel, rngs, *, stride=1, padding=0):
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.conv = nn.Conv(cin, cout, kernel, stride=stride, padding=padding, use_bias=False, rngs=rngs)
        self.bn = nn.BatchNorm(cout, eps=1e-3)

    def __call__(self, x):
        return jax.nn.relu(self.bn(self.conv(x)))


def transform_imagenet_input(x):
    """torchvision's ``transform_input``: ImageNet-normalised RGB ``(..., 3)`` to the ``(x - 0.5) / 0.5`` scaling
    of Google's Inception and GoogLeNet weights."""
    mean, std = jnp.asarray([0.485, 0.456, 0.406], x.dtype), jnp.asarray([0.229, 0.224, 0.225], x.dtype)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


def _pool_avg(x):
    return F.avg_pool(x, (3, 3), 1, 1)


def _pool_max(x):
    return F.max_pool(x, (3, 3), 2)


def _cat(*xs):
    return jnp.concatenate(xs, axis=-1)


class InceptionA(nnx.Module):
    def __init__(self, cin, pool_features, rngs):
        self.branch1x1 = BasicConv2d(cin, 64, 1, rngs)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1, rngs)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, rngs, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, rngs)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, rngs, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, rngs, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1, rngs)

    def __call__(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return _cat(self.branch1x1(x), b5, b3, self.branch_pool(_pool_avg(x)))


class InceptionB(nnx.Module):
    def __init__(self, cin, rngs):
        self.branch3x3 = BasicConv2d(cin, 384, 3, rngs, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, rngs)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, rngs, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, rngs, stride=2)

    def __call__(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return _cat(self.branch3x3(x), b3, _pool_max(x))


class InceptionC(nnx.Module):
    def __init__(self, cin, c7, rngs):
        row, col = dict(padding=(0, 3)), dict(padding=(3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, 1, rngs)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1, rngs)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), rngs, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), rngs, **col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1, rngs)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), rngs, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), rngs, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), rngs, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), rngs, **row)
        self.branch_pool = BasicConv2d(cin, 192, 1, rngs)

    def __call__(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return _cat(self.branch1x1(x), b7, d, self.branch_pool(_pool_avg(x)))


class InceptionD(nnx.Module):
    def __init__(self, cin, rngs):
        self.branch3x3_1 = BasicConv2d(cin, 192, 1, rngs)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, rngs, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1, rngs)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), rngs, padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), rngs, padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, rngs, stride=2)

    def __call__(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return _cat(b3, b7, _pool_max(x))


class InceptionE(nnx.Module):
    def __init__(self, cin, rngs):
        row, col = dict(padding=(0, 1)), dict(padding=(1, 0))
        self.branch1x1 = BasicConv2d(cin, 320, 1, rngs)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1, rngs)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), rngs, **row)
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), rngs, **col)
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1, rngs)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, rngs, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), rngs, **row)
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), rngs, **col)
        self.branch_pool = BasicConv2d(cin, 192, 1, rngs)

    def __call__(self, x):
        b3 = self.branch3x3_1(x)
        b3 = _cat(self.branch3x3_2a(b3), self.branch3x3_2b(b3))
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = _cat(self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d))
        return _cat(self.branch1x1(x), b3, d, self.branch_pool(_pool_avg(x)))


class InceptionAux(nnx.Module):
    """The auxiliary classifier on the 17x17 grid: avg pool 5/3, 1x1 conv 128, 5x5 conv 768, fc."""

    def __init__(self, cin, num_classes, rngs):
        self.conv0 = BasicConv2d(cin, 128, 1, rngs)
        self.conv1 = BasicConv2d(128, 768, 5, rngs)
        self.fc = nn.Linear(768, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.conv1(self.conv0(F.avg_pool(x, (5, 5), 3)))
        return self.fc(F.global_avg_pool(x, spatial_dims=2))


_STAGES = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
           "Mixed_7a", "Mixed_7b", "Mixed_7c")


class InceptionV3(Model):
    """Inception v3; 27,161,264 params at 1000 classes with the auxiliary head (23,834,568 without).

    ``(N, H, W, C) -> (N, num_classes)`` for ``H, W >= 75`` (299 is the published size). As in torchvision,
    the auxiliary head runs in training mode only, where it needs the 17x17 grid of a 299-pixel input;
    after ``model.eval()`` any size from 75 up works.

    ``features``: ``stem``, each ``Mixed_*`` block, ``aux_logits`` (training mode, with the aux head),
    ``pre_logits``.

    ``transform_input=True`` maps ImageNet-normalised inputs to the ``[-1, 1]`` scaling that Google's
    weights were trained on, as torchvision's ``inception_v3(weights=...)`` does: set it when loading
    those weights.
    """

    head_path = ("fc",)

    def __init__(self, num_classes, in_channels, rngs, *, aux_logits=True, dropout=0.5, transform_input=False):
        if transform_input and in_channels != 3:
            raise ValueError(f"inception_v3: transform_input=True needs in_channels=3 (ImageNet's RGB statistics), "
                             f"got in_channels={in_channels}")
        self.transform_input = transform_input
        # Flipped by model.train()/model.eval() (nnx sets ``deterministic`` on every module that has it),
        # like torch's ``self.training``: the auxiliary head runs only while training.
        self.deterministic = False
        self.Conv2d_1a_3x3 = BasicConv2d(in_channels, 32, 3, rngs, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3, rngs)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, rngs, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1, rngs)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3, rngs)
        self.Mixed_5b = InceptionA(192, 32, rngs)
        self.Mixed_5c = InceptionA(256, 64, rngs)
        self.Mixed_5d = InceptionA(288, 64, rngs)
        self.Mixed_6a = InceptionB(288, rngs)
        self.Mixed_6b = InceptionC(768, 128, rngs)
        self.Mixed_6c = InceptionC(768, 160, rngs)
        self.Mixed_6d = InceptionC(768, 160, rngs)
        self.Mixed_6e = InceptionC(768, 192, rngs)
        self.AuxLogits = InceptionAux(768, num_classes, rngs) if aux_logits else None
        self.Mixed_7a = InceptionD(768, rngs)
        self.Mixed_7b = InceptionE(1280, rngs)
        self.Mixed_7c = InceptionE(2048, rngs)
        self.dropout = nn.Dropout(dropout, rngs=rngs)
        self.fc = nn.Linear(2048, num_classes, rngs=rngs)

    def forward(self, x):
        if x.shape[-3] < 75 or x.shape[-2] < 75:
            raise ValueError(f"inception_v3: input of {x.shape[-3]}x{x.shape[-2]} pixels (shape {tuple(x.shape)}); "
                             "it needs at least 75x75 (299x299 as published)")
        size = x.shape[-3:-1]
        if self.transform_input:
            x = transform_imagenet_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = _pool_max(x)
        x = _pool_max(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        features = {"stem": x}
        for name in _STAGES:
            x = getattr(self, name)(x)
            features[name] = x
            if name == "Mixed_6e" and self.AuxLogits is not None and not self.deterministic:
                if x.shape[-3] < 17 or x.shape[-2] < 17:
                    raise ValueError(
                        f"inception_v3: in training mode the auxiliary head needs the 17x17 grid of a 299x299 input, "
                        f"got {x.shape[-3]}x{x.shape[-2]} from a {size[0]}x{size[1]} input; "
                        "call model.eval() for inference, or build it with aux_logits=False to train on smaller images")
                features["aux_logits"] = self.AuxLogits(x)
        x = F.global_avg_pool(x, spatial_dims=2)
        features["pre_logits"] = x
        return self.fc(self.dropout(x)), features


@register()
def inception_v3(*, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True, dropout: float = 0.5,
                 transform_input: bool = False, rngs: nnx.Rngs) -> InceptionV3:
    """Inception v3 (torchvision's layout); in training mode the auxiliary logits come back in the features dict."""
    return InceptionV3(num_classes, in_channels, rngs, aux_logits=aux_logits, dropout=dropout,
                       transform_input=transform_input)
