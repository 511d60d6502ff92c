"""RegNetX and RegNetY (Radosavovic et al. 2020), torchvision's layout, module names and width rule."""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model, run_stages
from cnnjax.models.blocks import NamedSequential, conv_norm_act, make_divisible
from cnnjax.models.registry import register


class BottleneckTransform(nnx.Module):
    """``a``: 1x1 conv; ``b``: grouped 3x3 conv (group width ``group_width``), strided; ``se``: squeeze-excitation
    (RegNetY); ``c``: 1x1 conv without activation."""

    def __init__(self, cin, cout, stride, group_width, bottleneck_multiplier, se_ratio, rngs):
        w_b = int(round(cout * bottleneck_multiplier))
        self.a = conv_norm_act(cin, w_b, 1, rngs, act=jax.nn.relu)
        self.b = conv_norm_act(w_b, w_b, 3, rngs, stride=stride, groups=w_b // group_width, act=jax.nn.relu)
        self.se = nn.SqueezeExcitation(w_b, int(round(se_ratio * cin)), rngs=rngs) if se_ratio else None
        self.c = conv_norm_act(w_b, cout, 1, rngs)

    def __call__(self, x):
        x = self.b(self.a(x))
        return self.c(x if self.se is None else self.se(x))


class ResBottleneckBlock(nnx.Module):
    """``relu(proj(x) + f(x))``, ``proj`` a strided 1x1 conv + BN where the shape changes (else the identity)."""

    def __init__(self, cin, cout, stride, group_width, bottleneck_multiplier, se_ratio, rngs):
        self.proj = conv_norm_act(cin, cout, 1, rngs, stride=stride) if cin != cout or stride != 1 else None
        self.f = BottleneckTransform(cin, cout, stride, group_width, bottleneck_multiplier, se_ratio, rngs)

    def __call__(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return jax.nn.relu(shortcut + self.f(x))


def block_params(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                 bottleneck_multiplier: float = 1.0) -> list[tuple[int, int, int]]:
    """torchvision's ``BlockParams.from_init_params``: ``(width, depth, group width)`` per stage.

    Block ``j`` gets width ``w_0 + j * w_a`` quantised in log space to ``w_0 * w_m**k`` and to multiples of 8;
    equal consecutive widths form a stage. Computed in float32 as torchvision does, so the roundings agree.
    """
    f32 = np.float32
    widths_cont = np.arange(depth).astype(f32) * f32(w_a) + f32(w_0)
    capacity = np.round(np.log(widths_cont / f32(w_0)) / f32(math.log(w_m)))
    widths = (np.round((f32(w_0) * np.power(f32(w_m), capacity)) / f32(8)) * 8).astype(int).tolist()
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:  # widths and group widths made compatible with the bottleneck
        w_bot = int(w * bottleneck_multiplier)
        g = min(group_width, w_bot)
        out.append((int(make_divisible(w_bot, g) / bottleneck_multiplier), d, g))
    return out


_CONFIGS = {  # depth, w_0, w_a, w_m, group width, squeeze-excitation ratio
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8, 0.25), "regnet_y_800mf": (14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24, 0.25), "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56, 0.25), "regnet_y_16gf": (18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232, 0.25), "regnet_y_128gf": (27, 456, 160.83, 2.52, 264, 0.25),
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16, None), "regnet_x_800mf": (16, 56, 35.73, 2.28, 16, None),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24, None), "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48, None),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120, None), "regnet_x_16gf": (22, 216, 55.59, 2.1, 128, None),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168, None),
}


class RegNet(Model):
    """RegNet: a 3x3 stride-2 stem of 32 channels, four stages of residual bottleneck blocks (stride 2 each),
    global average pooling, fc. ``features``: ``stem``, ``block1``..``block4``, ``pre_logits``."""

    head_path = ("fc",)

    def __init__(self, arch, num_classes, in_channels, rngs, *, stem_width=32):
        depth, w_0, w_a, w_m, group_width, se_ratio = _CONFIGS[arch]
        self.stem = conv_norm_act(in_channels, stem_width, 3, rngs, stride=2, act=jax.nn.relu)
        stages, cin = {}, stem_width
        for i, (width, d, g) in enumerate(block_params(depth, w_0, w_a, w_m, group_width)):
            stages[f"block{i + 1}"] = NamedSequential({  # torchvision's AnyStage
                f"block{i + 1}-{j}": ResBottleneckBlock(cin if j == 0 else width, width, 2 if j == 0 else 1, g, 1.0,
                                                         se_ratio, rngs) for j in range(d)})
            cin = width
        self.trunk_output = NamedSequential(stages)
        self.fc = nn.Linear(cin, num_classes, rngs=rngs)

    def forward(self, x):
        x = self.stem(x)
        features = {"stem": x}
        x = run_stages(self.trunk_output, x, self.trunk_output.names, features)
        x = F.global_avg_pool(x, spatial_dims=2)
        features["pre_logits"] = x
        return self.fc(x), features


def _builder(arch):
    def build(*, num_classes: int = 1000, in_channels: int = 3, rngs: nnx.Rngs) -> RegNet:
        return RegNet(arch, num_classes, in_channels, rngs)

    build.__doc__ = f"{arch} (torchvision's layout, names and widths)."
    return build


for _arch in _CONFIGS:
    register(_arch)(_builder(_arch))
