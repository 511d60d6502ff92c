"""DenseNet (Huang et al. 2017), torchvision's layout: BN-ReLU-Conv dense layers, compression 0.5."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class DenseLayer(nnx.Module):
    """BN-ReLU-1x1 conv (bottleneck to ``bn_size * growth``), BN-ReLU-3x3 conv to ``growth``; concatenated on."""

    def __init__(self, cin, growth, bn_size, rngs):
        self.norm1 = nn.BatchNorm(cin)
        self.conv1 = nn.Conv(cin, bn_size * growth, (1, 1), use_bias=False, rngs=rngs)
        self.norm2 = nn.BatchNorm(bn_size * growth)
        self.conv2 = nn.Conv(bn_size * growth, growth, (3, 3), padding=1, use_bias=False, rngs=rngs)

    def __call__(self, x):
        y = self.conv1(jax.nn.relu(self.norm1(x)))
        y = self.conv2(jax.nn.relu(self.norm2(y)))
        return jnp.concatenate([x, y], axis=-1)


class Transition(nnx.Module):
    """BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling."""

    def __init__(self, cin, cout, rngs):
        self.norm = nn.BatchNorm(cin)
        self.conv = nn.Conv(cin, cout, (1, 1), use_bias=False, rngs=rngs)

    def __call__(self, x):
        return F.avg_pool(self.conv(jax.nn.relu(self.norm(x))), (2, 2))


class DenseNet(Model):
    """DenseNet-BC. ``features``: ``stem``, ``block1``..``block4`` (after each transition), ``pre_logits``."""

    head_path = ("classifier",)

    def __init__(self, growth, block_config, num_init, num_classes, in_channels, rngs, *, bn_size=4):
        self.conv0 = nn.Conv(in_channels, num_init, (7, 7), stride=2, padding=3, use_bias=False, rngs=rngs)
        self.norm0 = nn.BatchNorm(num_init)
        c, blocks, transitions = num_init, [], []
        for i, n in enumerate(block_config):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(c, growth, bn_size, rngs))
                c += growth
            blocks.append(nnx.Sequential(*layers))
            if i != len(block_config) - 1:
                transitions.append(Transition(c, c // 2, rngs))
                c //= 2
        self.blocks, self.transitions = nnx.List(blocks), nnx.List(transitions)
        self.norm5 = nn.BatchNorm(c)
        self.classifier = nn.Linear(c, num_classes, rngs=rngs)

    def forward(self, x):
        x = F.max_pool(jax.nn.relu(self.norm0(self.conv0(x))), (3, 3), 2, 1)
        features = {"stem": x}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
            features[f"block{i + 1}"] = x
        x = F.global_avg_pool(jax.nn.relu(self.norm5(x)), spatial_dims=2)
        features["pre_logits"] = x
        return self.classifier(x), features


_DENSENETS = {"densenet121": (32, (6, 12, 24, 16), 64), "densenet169": (32, (6, 12, 32, 32), 64),
              "densenet201": (32, (6, 12, 48, 32), 64)}


def _densenet_builder(name):
    growth, blocks, init = _DENSENETS[name]

    def build(*, num_classes: int = 1000, in_channels: int = 3, rngs: nnx.Rngs):
        return DenseNet(growth, blocks, init, num_classes, in_channels, rngs)

    build.__doc__ = f"{name}: growth {growth}, blocks {blocks}, torchvision's layout."
    return build


for _name in _DENSENETS:
    register(_name)(_densenet_builder(_name))
