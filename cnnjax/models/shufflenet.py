"""ShuffleNet V2 (Ma et al. 2018), torchvision's layout and module names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model, run_stages
from cnnjax.models.registry import register


class ShuffleBlock(nnx.Module):
    """Split the channels in two (or, when subsampling, feed both branches everything), transform one half
    with 1x1 conv - 3x3 depthwise - 1x1 conv, concatenate and :func:`~cnnjax.functional.channel_shuffle`."""

    def __init__(self, cin, cout, stride, rngs):
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nnx.Sequential(
                nn.Conv(cin, cin, (3, 3), stride=stride, padding=1, groups=cin, use_bias=False, rngs=rngs),
                nn.BatchNorm(cin), nn.Conv(cin, half, (1, 1), use_bias=False, rngs=rngs), nn.BatchNorm(half),
                jax.nn.relu)
        self.branch2 = nnx.Sequential(
            nn.Conv(cin if stride > 1 else half, half, (1, 1), use_bias=False, rngs=rngs), nn.BatchNorm(half),
            jax.nn.relu, nn.Conv(half, half, (3, 3), stride=stride, padding=1, groups=half, use_bias=False, rngs=rngs),
            nn.BatchNorm(half), nn.Conv(half, half, (1, 1), use_bias=False, rngs=rngs), nn.BatchNorm(half),
            jax.nn.relu)

    def __call__(self, x):
        if self.stride == 1:
            x1, x2 = jnp.split(x, 2, axis=-1)
            out = jnp.concatenate([x1, self.branch2(x2)], axis=-1)
        else:
            out = jnp.concatenate([self.branch1(x), self.branch2(x)], axis=-1)
        return F.channel_shuffle(out, 2)


_CONFIGS = {"shufflenet_v2_x0_5": [24, 48, 96, 192, 1024], "shufflenet_v2_x1_0": [24, 116, 232, 464, 1024],
            "shufflenet_v2_x1_5": [24, 176, 352, 704, 1024], "shufflenet_v2_x2_0": [24, 244, 488, 976, 2048]}


class ShuffleNetV2(Model):
    """ShuffleNet V2. ``features``: ``stem``, ``stage2``..``stage4``, ``pre_logits``."""

    head_path = ("fc",)

    def __init__(self, arch, num_classes, in_channels, rngs):
        widths = _CONFIGS[arch]
        self.conv1 = nnx.Sequential(nn.Conv(in_channels, widths[0], (3, 3), stride=2, padding=1, use_bias=False,
                                            rngs=rngs), nn.BatchNorm(widths[0]), jax.nn.relu)
        cin = widths[0]
        for name, repeats, cout in zip(("stage2", "stage3", "stage4"), (4, 8, 4), widths[1:4]):
            setattr(self, name, nnx.Sequential(ShuffleBlock(cin, cout, 2, rngs),
                                               *[ShuffleBlock(cout, cout, 1, rngs) for _ in range(repeats - 1)]))
            cin = cout
        self.conv5 = nnx.Sequential(nn.Conv(cin, widths[4], (1, 1), use_bias=False, rngs=rngs), nn.BatchNorm(widths[4]),
                                    jax.nn.relu)
        self.fc = nn.Linear(widths[4], num_classes, rngs=rngs)

    def forward(self, x):
        x = F.max_pool(self.conv1(x), (3, 3), (2, 2), (1, 1))
        features = {"stem": x}
        x = run_stages(self, x, ("stage2", "stage3", "stage4"), features)
        x = F.global_avg_pool(self.conv5(x), spatial_dims=2)
        features["pre_logits"] = x
        return self.fc(x), features


def _builder(arch):
    def build(*, num_classes: int = 1000, in_channels: int = 3, rngs: nnx.Rngs) -> ShuffleNetV2:
        return ShuffleNetV2(arch, num_classes, in_channels, rngs)

    build.__doc__ = f"{arch} (torchvision's layout and names; stage widths {_CONFIGS[arch]})."
    return build


for _arch in _CONFIGS:
    register(_arch)(_builder(_arch))
