"""EfficientNet B0-B7 (Tan & Le 2019) and V2 S/M/L (Tan & Le 2021), torchvision's layout and module names."""

from __future__ import annotations

import math

import jax
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.blocks import conv_norm_act, features_then_classifier, make_divisible
from cnnjax.models.registry import register


class MBConv(nnx.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise ``kernel`` conv, squeeze-excitation (SiLU, a quarter
    of the input channels), 1x1 projection; SiLU throughout; stochastic depth on the residual branch."""

    def __init__(self, expand_ratio, kernel, stride, cin, cout, sd_prob, bn, rngs):
        expanded = make_divisible(cin * expand_ratio, 8)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [conv_norm_act(cin, expanded, 1, rngs, act=jax.nn.silu, **bn)] if expanded != cin else []
        layers += [conv_norm_act(expanded, expanded, kernel, rngs, stride=stride, groups=expanded, act=jax.nn.silu, **bn),
                   nn.SqueezeExcitation(expanded, max(1, cin // 4), activation=jax.nn.silu, rngs=rngs),
                   conv_norm_act(expanded, cout, 1, rngs, **bn)]
        self.block = nnx.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(sd_prob, "row", rngs=rngs)

    def __call__(self, x):
        y = self.block(x)
        return self.stochastic_depth(y) + x if self.use_res_connect else y


class FusedMBConv(nnx.Module):
    """EfficientNetV2's fused block: one full ``kernel`` conv expands (and strides), a 1x1 conv projects."""

    def __init__(self, expand_ratio, kernel, stride, cin, cout, sd_prob, bn, rngs):
        expanded = make_divisible(cin * expand_ratio, 8)
        self.use_res_connect = stride == 1 and cin == cout
        if expanded != cin:
            layers = [conv_norm_act(cin, expanded, kernel, rngs, stride=stride, act=jax.nn.silu, **bn),
                      conv_norm_act(expanded, cout, 1, rngs, **bn)]
        else:
            layers = [conv_norm_act(cin, cout, kernel, rngs, stride=stride, act=jax.nn.silu, **bn)]
        self.block = nnx.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(sd_prob, "row", rngs=rngs)

    def __call__(self, x):
        y = self.block(x)
        return self.stochastic_depth(y) + x if self.use_res_connect else y


# (block, expand ratio, kernel, stride, input channels, output channels, layers) per stage
_B = [(MBConv, 1, 3, 1, 32, 16, 1), (MBConv, 6, 3, 2, 16, 24, 2), (MBConv, 6, 5, 2, 24, 40, 2),
      (MBConv, 6, 3, 2, 40, 80, 3), (MBConv, 6, 5, 1, 80, 112, 3), (MBConv, 6, 5, 2, 112, 192, 4),
      (MBConv, 6, 3, 1, 192, 320, 1)]
_V2 = {
    "s": [(FusedMBConv, 1, 3, 1, 24, 24, 2), (FusedMBConv, 4, 3, 2, 24, 48, 4), (FusedMBConv, 4, 3, 2, 48, 64, 4),
          (MBConv, 4, 3, 2, 64, 128, 6), (MBConv, 6, 3, 1, 128, 160, 9), (MBConv, 6, 3, 2, 160, 256, 15)],
    "m": [(FusedMBConv, 1, 3, 1, 24, 24, 3), (FusedMBConv, 4, 3, 2, 24, 48, 5), (FusedMBConv, 4, 3, 2, 48, 80, 5),
          (MBConv, 4, 3, 2, 80, 160, 7), (MBConv, 6, 3, 1, 160, 176, 14), (MBConv, 6, 3, 2, 176, 304, 18),
          (MBConv, 6, 3, 1, 304, 512, 5)],
    "l": [(FusedMBConv, 1, 3, 1, 32, 32, 4), (FusedMBConv, 4, 3, 2, 32, 64, 7), (FusedMBConv, 4, 3, 2, 64, 96, 7),
          (MBConv, 4, 3, 2, 96, 192, 10), (MBConv, 6, 3, 1, 192, 224, 19), (MBConv, 6, 3, 2, 224, 384, 25),
          (MBConv, 6, 3, 1, 384, 640, 7)],
}
# width multiplier, depth multiplier, dropout, BatchNorm (eps, PyTorch's momentum)
_SCALING = {
    "efficientnet_b0": (1.0, 1.0, 0.2, (1e-5, 0.1)), "efficientnet_b1": (1.0, 1.1, 0.2, (1e-5, 0.1)),
    "efficientnet_b2": (1.1, 1.2, 0.3, (1e-5, 0.1)), "efficientnet_b3": (1.2, 1.4, 0.3, (1e-5, 0.1)),
    "efficientnet_b4": (1.4, 1.8, 0.4, (1e-5, 0.1)), "efficientnet_b5": (1.6, 2.2, 0.4, (1e-3, 0.01)),
    "efficientnet_b6": (1.8, 2.6, 0.5, (1e-3, 0.01)), "efficientnet_b7": (2.0, 3.1, 0.5, (1e-3, 0.01)),
    "efficientnet_v2_s": (1.0, 1.0, 0.2, (1e-3, 0.1)), "efficientnet_v2_m": (1.0, 1.0, 0.3, (1e-3, 0.1)),
    "efficientnet_v2_l": (1.0, 1.0, 0.4, (1e-3, 0.1)),
}


class EfficientNet(Model):
    """EfficientNet; ``features``: ``stem``, ``stage1``.. (the last map at each resolution), ``pre_logits``.

    ``stochastic_depth_prob`` grows linearly over the blocks to its value at the last one, as in torchvision.
    """

    head_path = ("classifier", "layers", 1)

    def __init__(self, arch, num_classes, in_channels, rngs, *, dropout=None, stochastic_depth_prob=0.2):
        width, depth, default_dropout, (eps, momentum) = _SCALING[arch]
        dropout = default_dropout if dropout is None else dropout
        bn = dict(eps=eps, momentum=momentum)
        v2 = arch.startswith("efficientnet_v2")
        setting = _V2[arch[-1]] if v2 else _B
        adjust = lambda c: make_divisible(c * width, 8)  # noqa: E731
        stages = [(block, e, k, s, adjust(cin), adjust(cout), math.ceil(n * depth))
                  for block, e, k, s, cin, cout, n in setting]
        features = [conv_norm_act(in_channels, stages[0][4], 3, rngs, stride=2, act=jax.nn.silu, **bn)]
        total, index = sum(st[-1] for st in stages), 0
        for block, e, k, s, cin, cout, n in stages:
            blocks = []
            for i in range(n):
                sd = stochastic_depth_prob * index / total
                blocks.append(block(e, k, s if i == 0 else 1, cin if i == 0 else cout, cout, sd, bn, rngs))
                index += 1
            features.append(nnx.Sequential(*blocks))
        last_in = stages[-1][5]
        last = 1280 if v2 else 4 * last_in
        features.append(conv_norm_act(last_in, last, 1, rngs, act=jax.nn.silu, **bn))
        self.features = nnx.Sequential(*features)
        self.classifier = nnx.Sequential(nn.Dropout(dropout, rngs=rngs), nn.Linear(last, num_classes, rngs=rngs))

    def forward(self, x):
        return features_then_classifier(self, x)


def _builder(arch):
    def build(*, num_classes: int = 1000, in_channels: int = 3, dropout: float | None = None,
              stochastic_depth_prob: float = 0.2, rngs: nnx.Rngs) -> EfficientNet:
        return EfficientNet(arch, num_classes, in_channels, rngs, dropout=dropout,
                            stochastic_depth_prob=stochastic_depth_prob)

    build.__doc__ = f"{arch} (torchvision's layout and names; dropout {_SCALING[arch][2]} by default)."
    return build


for _arch in _SCALING:
    register(_arch)(_builder(_arch))
