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


class DenseBlock(nnx.Module):
    """``n`` dense layers named ``denselayer1`` .. ``denselayerN``, as torchvision names them.

    ``(..., H, W, cin) -> (..., H, W, cin + n * growth)``.
    """

    def __init__(self, n, cin, growth, bn_size, rngs):
        self.num_layers = n
        for j in range(n):
            setattr(self, f"denselayer{j + 1}", DenseLayer(cin + j * growth, growth, bn_size, rngs))

    def __call__(self, x):
        for j in range(self.num_layers):
            x = getattr(self, f"denselayer{j + 1}")(x)
        return x


class DenseFeatures(nnx.Module):
    """torchvision's ``features``: ``conv0``, ``norm0``, ``denseblock1``, ``transition1``, .., ``denseblockN``, ``norm5``."""

    def __init__(self, growth, block_config, num_init, in_channels, rngs, bn_size):
        self.conv0 = nn.Conv(in_channels, num_init, (7, 7), stride=2, padding=3, use_bias=False, rngs=rngs)
        self.norm0 = nn.BatchNorm(num_init)
        self.num_blocks = len(block_config)
        c = num_init
        for i, n in enumerate(block_config):
            setattr(self, f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size, rngs))
            c += n * growth
            if i != len(block_config) - 1:
                setattr(self, f"transition{i + 1}", Transition(c, c // 2, rngs))
                c //= 2
        self.norm5 = nn.BatchNorm(c)
        self.out_channels = c


class DenseNet(Model):
    """DenseNet-BC with torchvision's module names (``features.denseblock1.denselayer1.conv1``, ..), so
    :func:`cnnjax.models.load_torch_state_dict` takes a torchvision state dict as it is.

    ``features``: ``stem``, ``block1``..``block4`` (after each transition), ``pre_logits``.
    """

    head_path = ("classifier",)

    def __init__(self, growth, block_config, num_init, num_classes, in_channels, rngs, *, bn_size=4):
        self.features = DenseFeatures(growth, block_config, num_init, in_channels, rngs, bn_size)
        self.classifier = nn.Linear(self.features.out_channels, num_classes, rngs=rngs)

    def forward(self, x):
        f = self.features
        x = F.max_pool(jax.nn.relu(f.norm0(f.conv0(x))), (3, 3), 2, 1)
        features = {"stem": x}
        for i in range(1, f.num_blocks + 1):
            x = getattr(f, f"denseblock{i}")(x)
            if i < f.num_blocks:
                x = getattr(f, f"transition{i}")(x)
            features[f"block{i}"] = x
        x = F.global_avg_pool(jax.nn.relu(f.norm5(x)), spatial_dims=2)
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
