"""Building blocks the torchvision-layout mobile and modern families share: torchvision's
``Conv2dNormActivation`` and ``_make_divisible``."""

from __future__ import annotations

from typing import Callable

from flax import nnx

from cnnjax import functional as F
from cnnjax import nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``v`` rounded to the nearest multiple of ``divisor``, never below 90% of ``v`` (torchvision's rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_norm_act(cin: int, cout: int, kernel: int, rngs: nnx.Rngs, *, stride: int = 1, groups: int = 1,
                  dilation: int = 1, act: Callable | None = None, eps: float = 1e-5,
                  momentum: float = 0.1) -> nnx.Sequential:
    """torchvision's ``Conv2dNormActivation``: a bias-free ``kernel x kernel`` conv padded to keep the size
    (``(kernel - 1) // 2 * dilation``), BatchNorm (PyTorch's ``momentum``) and ``act`` when given.

    Indices 0, 1 (and 2 for the activation) match torchvision's, so its state dicts load.
    """
    conv = nn.Conv(cin, cout, (kernel, kernel), stride=stride, padding=(kernel - 1) // 2 * dilation,
                   dilation=dilation, groups=groups, use_bias=False, rngs=rngs)
    layers = [conv, nn.BatchNorm(cout, eps=eps, momentum=1.0 - momentum)]
    return nnx.Sequential(*layers, act) if act is not None else nnx.Sequential(*layers)


def features_then_classifier(model: nnx.Module, x):
    """``model.features`` (an ``nnx.Sequential``), global average pooling, ``model.classifier``.

    Returns ``(logits, features)``: ``stem`` (the first layer's output), ``stage1``, ``stage2``, .. (the last map
    at each resolution, strides 2, 4, 8, ..) and ``pre_logits``.
    """
    layers = model.features.layers
    x = layers[0](x)
    features, stage = {"stem": x}, 1
    for layer in layers[1:]:
        y = layer(x)
        if y.shape[-3:-1] != x.shape[-3:-1]:  # x was the last map at its resolution
            features[f"stage{stage}"], stage = x, stage + 1
        x = y
    features[f"stage{stage}"] = x
    x = F.global_avg_pool(x, spatial_dims=2)
    features["pre_logits"] = x
    return model.classifier(x), features


class NamedSequential(nnx.Module):
    """Layers applied in order under the names given, as PyTorch's ``nn.Sequential(OrderedDict(...))`` names them
    (names need not be identifiers: RegNet's are ``block1-0``)."""

    def __init__(self, layers: dict[str, nnx.Module]):
        self.names = tuple(layers)
        for name, layer in layers.items():
            setattr(self, name, layer)

    def __call__(self, x):
        for name in self.names:
            x = getattr(self, name)(x)
        return x
