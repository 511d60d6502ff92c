"""GoogLeNet (Inception v1, Szegedy et al. 2015), torchvision's layout and module names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.inception import BasicConv2d, transform_imagenet_input
from cnnjax.models.registry import register


def _pool(window, stride, padding=0):
    return nn.MaxPool((window, window), (stride, stride), (padding, padding), ceil_mode=True)


class Inception(nnx.Module):
    """Four branches concatenated: 1x1; 1x1 then 3x3; 1x1 then 3x3 (torchvision's, where the paper has 5x5);
    3x3 max pool then 1x1."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, rngs):
        self.branch1 = BasicConv2d(cin, ch1x1, 1, rngs)
        self.branch2 = nnx.Sequential(BasicConv2d(cin, ch3x3red, 1, rngs), BasicConv2d(ch3x3red, ch3x3, 3, rngs, padding=1))
        self.branch3 = nnx.Sequential(BasicConv2d(cin, ch5x5red, 1, rngs), BasicConv2d(ch5x5red, ch5x5, 3, rngs, padding=1))
        self.branch4 = nnx.Sequential(_pool(3, 1, 1), BasicConv2d(cin, pool_proj, 1, rngs))

    def __call__(self, x):
        return jnp.concatenate([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=-1)


class InceptionAux(nnx.Module):
    """Auxiliary classifier: 4x4 adaptive average pool, 1x1 conv to 128, fc 2048 -> 1024 (ReLU, dropout), fc."""

    def __init__(self, cin, num_classes, dropout, rngs):
        self.conv = BasicConv2d(cin, 128, 1, rngs)
        self.fc1 = nn.Linear(2048, 1024, rngs=rngs)
        self.fc2 = nn.Linear(1024, num_classes, rngs=rngs)
        self.dropout = nn.Dropout(dropout, rngs=rngs)

    def __call__(self, x):
        x = self.conv(F.adaptive_avg_pool(x, (4, 4)))
        x = jnp.moveaxis(x, -1, -3).reshape(x.shape[:-3] + (-1,))  # PyTorch's (C, H, W) order, which fc1 was made for
        return self.fc2(self.dropout(jax.nn.relu(self.fc1(x))))


_BLOCKS = {"inception3a": (192, 64, 96, 128, 16, 32, 32), "inception3b": (256, 128, 128, 192, 32, 96, 64),
           "inception4a": (480, 192, 96, 208, 16, 48, 64), "inception4b": (512, 160, 112, 224, 24, 64, 64),
           "inception4c": (512, 128, 128, 256, 24, 64, 64), "inception4d": (512, 112, 144, 288, 32, 64, 64),
           "inception4e": (528, 256, 160, 320, 32, 128, 128), "inception5a": (832, 256, 160, 320, 32, 128, 128),
           "inception5b": (832, 384, 192, 384, 48, 128, 128)}


class GoogLeNet(Model):
    """GoogLeNet: 13,004,888 params at 1000 classes with its two auxiliary heads (6,624,904 without).

    As in torchvision, the auxiliary heads run in training mode only. ``features``: ``stem``, each
    ``inception*`` block, ``aux1``/``aux2`` (training mode, with the heads), ``pre_logits``.
    ``transform_input=True`` is for Google's weights, as in :class:`~cnnjax.models.inception.InceptionV3`.
    """

    head_path = ("fc",)

    def __init__(self, num_classes, in_channels, rngs, *, aux_logits=True, transform_input=False, dropout=0.2,
                 dropout_aux=0.7):
        self.transform_input = transform_input
        self.deterministic = False  # flipped by model.train()/model.eval(): the aux heads run in training only
        self.conv1 = BasicConv2d(in_channels, 64, 7, rngs, stride=2, padding=3)
        self.conv2 = BasicConv2d(64, 64, 1, rngs)
        self.conv3 = BasicConv2d(64, 192, 3, rngs, padding=1)
        for name, cfg in _BLOCKS.items():
            setattr(self, name, Inception(*cfg, rngs))
        self.aux1 = InceptionAux(512, num_classes, dropout_aux, rngs) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout_aux, rngs) if aux_logits else None
        self.dropout = nn.Dropout(dropout, rngs=rngs)
        self.fc = nn.Linear(1024, num_classes, rngs=rngs)

    def forward(self, x):
        if self.transform_input:
            x = transform_imagenet_input(x)
        x = _pool(3, 2)(self.conv1(x))
        x = _pool(3, 2)(self.conv3(self.conv2(x)))
        features = {"stem": x}
        for name in _BLOCKS:
            if name == "inception4a":
                x = _pool(3, 2)(x)
            if name == "inception5a":
                x = _pool(2, 2)(x)
            x = getattr(self, name)(x)
            features[name] = x
            aux = {"inception4a": self.aux1, "inception4d": self.aux2}.get(name)
            if aux is not None and not self.deterministic:
                features["aux1" if name == "inception4a" else "aux2"] = aux(x)
        x = F.global_avg_pool(x, spatial_dims=2)
        features["pre_logits"] = x
        return self.fc(self.dropout(x)), features


@register()
def googlenet(*, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True, transform_input: bool = False,
              dropout: float = 0.2, dropout_aux: float = 0.7, rngs: nnx.Rngs) -> GoogLeNet:
    """GoogLeNet (torchvision's layout and names); in training mode the auxiliary logits come back in the
    features dict."""
    return GoogLeNet(num_classes, in_channels, rngs, aux_logits=aux_logits, transform_input=transform_input,
                     dropout=dropout, dropout_aux=dropout_aux)
