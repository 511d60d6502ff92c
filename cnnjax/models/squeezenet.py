"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), torchvision's layout and module names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class Fire(nnx.Module):
    """1x1 squeeze conv, then 1x1 and 3x3 expand convs side by side, concatenated; ReLU after each."""

    def __init__(self, cin, squeeze, expand1x1, expand3x3, rngs):
        self.squeeze = nn.Conv(cin, squeeze, (1, 1), rngs=rngs)
        self.expand1x1 = nn.Conv(squeeze, expand1x1, (1, 1), rngs=rngs)
        self.expand3x3 = nn.Conv(squeeze, expand3x3, (3, 3), padding=1, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.squeeze(x))
        return jnp.concatenate([jax.nn.relu(self.expand1x1(x)), jax.nn.relu(self.expand3x3(x))], axis=-1)


def _pool():
    return nn.MaxPool((3, 3), (2, 2), ceil_mode=True)


class SqueezeNet(Model):
    """SqueezeNet: Fire modules, and a 1x1 conv classifier averaged over the final map (no Linear).

    1.0: 1,248,424 params at 1000 classes; 1.1: 1,235,496. ``features``: ``stem``, ``pre_logits`` (the last
    Fire module's map) and ``class_map`` (per-position class scores before the average).
    """

    head_path = ("classifier", "layers", 1)

    def __init__(self, version, num_classes, in_channels, rngs, *, dropout=0.5):
        relu = jax.nn.relu
        if version == "1_0":
            layers = [nn.Conv(in_channels, 96, (7, 7), stride=2, rngs=rngs), relu, _pool(),
                      Fire(96, 16, 64, 64, rngs), Fire(128, 16, 64, 64, rngs), Fire(128, 32, 128, 128, rngs), _pool(),
                      Fire(256, 32, 128, 128, rngs), Fire(256, 48, 192, 192, rngs), Fire(384, 48, 192, 192, rngs),
                      Fire(384, 64, 256, 256, rngs), _pool(), Fire(512, 64, 256, 256, rngs)]
        else:
            layers = [nn.Conv(in_channels, 64, (3, 3), stride=2, rngs=rngs), relu, _pool(),
                      Fire(64, 16, 64, 64, rngs), Fire(128, 16, 64, 64, rngs), _pool(),
                      Fire(128, 32, 128, 128, rngs), Fire(256, 32, 128, 128, rngs), _pool(),
                      Fire(256, 48, 192, 192, rngs), Fire(384, 48, 192, 192, rngs), Fire(384, 64, 256, 256, rngs),
                      Fire(512, 64, 256, 256, rngs)]
        self.features = nnx.Sequential(*layers)
        self.classifier = nnx.Sequential(nn.Dropout(dropout, rngs=rngs), nn.Conv(512, num_classes, (1, 1), rngs=rngs),
                                         relu)

    def forward(self, x):
        x = stem = self.features.layers[1](self.features.layers[0](x))
        for layer in self.features.layers[2:]:
            x = layer(x)
        features = {"stem": stem, "pre_logits": x}
        scores = self.classifier(x)
        features["class_map"] = scores
        return F.global_avg_pool(scores, spatial_dims=2), features


def _builder(version):
    def build(*, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
              rngs: nnx.Rngs) -> SqueezeNet:
        return SqueezeNet(version, num_classes, in_channels, rngs, dropout=dropout)

    build.__doc__ = f"squeezenet{version} (torchvision's layout and names)."
    return build


for _version in ("1_0", "1_1"):
    register(f"squeezenet{_version}")(_builder(_version))
