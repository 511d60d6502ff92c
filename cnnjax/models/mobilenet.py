"""MobileNet V2 (Sandler et al. 2018) and V3 (Howard et al. 2019), torchvision's layout and module names."""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.blocks import conv_norm_act, features_then_classifier, make_divisible
from cnnjax.models.registry import register


class InvertedResidual(nnx.Module):
    """MobileNetV2's block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection; residual when
    the shape is kept. ``(N, H, W, cin) -> (N, H / stride, W / stride, cout)``."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, rngs: nnx.Rngs):
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers = [conv_norm_act(cin, hidden, 1, rngs, act=jax.nn.relu6)] if expand_ratio != 1 else []
        layers += [conv_norm_act(hidden, hidden, 3, rngs, stride=stride, groups=hidden, act=jax.nn.relu6),
                   nn.Conv(hidden, cout, (1, 1), use_bias=False, rngs=rngs), nn.BatchNorm(cout)]
        self.conv = nnx.Sequential(*layers)

    def __call__(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Model):
    """MobileNetV2 (3,504,872 params at 1000 classes). ``features``: ``stem`` and ``stage1``..``stage5``
    (the outputs at strides 2, 4, 8, 16, 32, before the last 1x1 conv), ``pre_logits``."""

    head_path = ("classifier", "layers", 1)

    def __init__(self, num_classes, in_channels, rngs, *, width_mult=1.0, dropout=0.2, round_nearest=8):
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                   [6, 320, 1, 1]]
        cin = make_divisible(32 * width_mult, round_nearest)
        last = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_norm_act(in_channels, cin, 3, rngs, stride=2, act=jax.nn.relu6)]
        for t, c, n, s in setting:
            cout = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, rngs))
                cin = cout
        features.append(conv_norm_act(cin, last, 1, rngs, act=jax.nn.relu6))
        self.features = nnx.Sequential(*features)
        self.classifier = nnx.Sequential(nn.Dropout(dropout, rngs=rngs), nn.Linear(last, num_classes, rngs=rngs))

    def forward(self, x):
        return features_then_classifier(self, x)


class InvertedResidualV3(nnx.Module):
    """MobileNetV3's block: optional 1x1 expand, depthwise ``kernel`` conv, optional squeeze-excitation
    (hard-sigmoid gate), 1x1 linear projection; ReLU or hard-swish; residual when the shape is kept."""

    def __init__(self, cin, kernel, expanded, cout, use_se, use_hs, stride, dilation, rngs, norm_eps=0.001):
        act = jax.nn.hard_swish if use_hs else jax.nn.relu
        bn = dict(eps=norm_eps, momentum=0.01)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [conv_norm_act(cin, expanded, 1, rngs, act=act, **bn)] if expanded != cin else []
        layers.append(conv_norm_act(expanded, expanded, kernel, rngs, stride=1 if dilation > 1 else stride,
                                    dilation=dilation, groups=expanded, act=act, **bn))
        if use_se:
            layers.append(nn.SqueezeExcitation(expanded, make_divisible(expanded // 4, 8),
                                               scale_activation=jax.nn.hard_sigmoid, rngs=rngs))
        layers.append(conv_norm_act(expanded, cout, 1, rngs, **bn))
        self.block = nnx.Sequential(*layers)

    def __call__(self, x):
        y = self.block(x)
        return y + x if self.use_res_connect else y


# (input, kernel, expanded, output, squeeze-excitation, hard-swish, stride) per block, as torchvision's tables
_V3 = {
    "mobilenet_v3_large": ([(16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2),
                            (24, 3, 72, 24, False, False, 1), (24, 5, 72, 40, True, False, 2),
                            (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
                            (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1),
                            (80, 3, 184, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
                            (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
                            (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1),
                            (160, 5, 960, 160, True, True, 1)], 1280),
    "mobilenet_v3_small": ([(16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2),
                            (24, 3, 88, 24, False, False, 1), (24, 5, 96, 40, True, True, 2),
                            (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
                            (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1),
                            (48, 5, 288, 96, True, True, 2), (96, 5, 576, 96, True, True, 1),
                            (96, 5, 576, 96, True, True, 1)], 1024),
}


class MobileNetV3(Model):
    """MobileNetV3 large (5,483,032 params) or small (2,542,856). ``features``: ``stem``, ``stage1``.. (the
    last map at each resolution), ``pre_logits``."""

    head_path = ("classifier", "layers", 3)

    def __init__(self, arch, num_classes, in_channels, rngs, *, width_mult=1.0, dropout=0.2, norm_eps=0.001):
        setting, last = _V3[arch]
        adjust = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731
        bn = dict(eps=norm_eps, momentum=0.01)
        features = [conv_norm_act(in_channels, adjust(setting[0][0]), 3, rngs, stride=2, act=jax.nn.hard_swish, **bn)]
        for cin, k, exp, cout, se, hs, s in setting:
            features.append(InvertedResidualV3(adjust(cin), k, adjust(exp), adjust(cout), se, hs, s, 1, rngs, norm_eps))
        c = adjust(setting[-1][3])
        features.append(conv_norm_act(c, 6 * c, 1, rngs, act=jax.nn.hard_swish, **bn))
        self.features = nnx.Sequential(*features)
        last = adjust(last)
        self.classifier = nnx.Sequential(nn.Linear(6 * c, last, rngs=rngs), jax.nn.hard_swish,
                                         nn.Dropout(dropout, rngs=rngs), nn.Linear(last, num_classes, rngs=rngs))

    def forward(self, x):
        return features_then_classifier(self, x)


@register()
def mobilenet_v2(*, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2,
                 rngs: nnx.Rngs) -> MobileNetV2:
    """MobileNetV2 (torchvision's layout and names; 3,504,872 params)."""
    return MobileNetV2(num_classes, in_channels, rngs, width_mult=width_mult, dropout=dropout)


def _v3_builder(arch):
    def build(*, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2,
              norm_eps: float = 0.001, rngs: nnx.Rngs) -> MobileNetV3:
        return MobileNetV3(arch, num_classes, in_channels, rngs, width_mult=width_mult, dropout=dropout, norm_eps=norm_eps)

    build.__doc__ = (f"{arch} (torchvision's layout and names). ``norm_eps``: BatchNorm's eps, torchvision's 1e-3; "
                     "timm's MobileNetV3 checkpoints need 1e-5.")
    return build


for _arch in _V3:
    register(_arch)(_v3_builder(_arch))
