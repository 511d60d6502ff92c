"""VGG (Simonyan & Zisserman 2015) and AlexNet (Krizhevsky et al. 2012), torchvision's layouts.

``features`` and ``classifier`` are ``nnx.Sequential`` with torchvision's indices, so
state-dict keys such as ``features.0.weight`` and ``classifier.6.weight`` map directly.
"""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.downsample import MaxPoolSubsample, check_downsample
from cnnjax.models.registry import register

_CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class FeaturesClassifier(Model):
    """``features`` (conv stack), adaptive average pool, flatten, ``classifier`` (an MLP).

    ``features`` dict: ``block1``.. (after each max pool), ``pooled``, ``pre_logits``.
    """

    head_path = ("classifier", "layers", 6)
    pool_size = (7, 7)

    def forward(self, x):
        features, block = {}, 0
        for layer in self.features.layers:
            x = layer(x)
            if isinstance(layer, (nn.MaxPool, MaxPoolSubsample)):
                block += 1
                features[f"block{block}"] = x
        x = self.avgpool(x)
        features["pooled"] = x
        x = x.reshape(x.shape[:-3] + (-1,))
        layers = list(self.classifier.layers)
        for layer in layers[:-1]:
            x = layer(x)
        features["pre_logits"] = x
        return layers[-1](x), features


class VGG(FeaturesClassifier):
    """VGG-11/13/16/19 (``batch_norm=True`` for the ``_bn`` variants), 224x224 input.

    ``cfg`` lists conv widths and ``"M"`` (2x2 max pool); ``hidden`` is the classifier's width.
    ``downsample="blur"`` (Zhang's MaxBlurPool) or ``"aps"`` replaces each max pool by a
    stride-1 max pool and a BlurPool/APS, in the same ``features`` slot.
    """

    def __init__(self, cfg, num_classes, in_channels, rngs, *, batch_norm=False, dropout=0.5, hidden=4096,
                 downsample="stride", blur_size=3):
        check_downsample(downsample, blur_size, "VGG")
        layers, cin = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool((2, 2)) if downsample == "stride"
                              else MaxPoolSubsample((2, 2), downsample, blur_size=blur_size))
                continue
            layers.append(nn.Conv(cin, v, (3, 3), padding=1, rngs=rngs))
            if batch_norm:
                layers.append(nn.BatchNorm(v))
            layers.append(jax.nn.relu)
            cin = v
        self.features = nnx.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool(self.pool_size)
        # The first classifier layer reads a flattened (C, H, W) map in PyTorch, (H, W, C) here.
        self.torch_chw = ("classifier.0", (cin, *self.pool_size))
        self.classifier = nnx.Sequential(
            nn.Linear(cin * 7 * 7, hidden, rngs=rngs), jax.nn.relu, nn.Dropout(dropout, rngs=rngs),
            nn.Linear(hidden, hidden, rngs=rngs), jax.nn.relu, nn.Dropout(dropout, rngs=rngs),
            nn.Linear(hidden, num_classes, rngs=rngs),
        )


def _vgg_builder(name, bn):
    def build(*, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, downsample: str = "stride",
              blur_size: int = 3, rngs: nnx.Rngs):
        return VGG(_CFGS[name], num_classes, in_channels, rngs, batch_norm=bn, dropout=dropout,
                   downsample=downsample, blur_size=blur_size)

    build.__doc__ = (f"{name}{'_bn' if bn else ''}: torchvision's VGG configuration {name[-2:]}; "
                     "downsample='blur'|'aps' for shift studies.")
    return build


for _name in _CFGS:
    register(_name)(_vgg_builder(_name, False))
    register(f"{_name}_bn")(_vgg_builder(_name, True))


class AlexNet(FeaturesClassifier):
    """AlexNet as in torchvision (61,100,840 params at 1000 classes), 224x224 input.

    ``local_response_norm=True`` adds the paper's LRN (size 5, alpha 1e-4, beta 0.75, k 2)
    after the first two convs; it has no parameters.
    """

    pool_size = (6, 6)
    torch_chw = ("classifier.1", (256, 6, 6))
    head_path = ("classifier", "layers", 6)

    def __init__(self, num_classes, in_channels, rngs, *, dropout=0.5, local_response_norm=False):
        def lrn():
            return [nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)] if local_response_norm else []

        self.features = nnx.Sequential(
            nn.Conv(in_channels, 64, (11, 11), stride=4, padding=2, rngs=rngs), jax.nn.relu, *lrn(),
            nn.MaxPool((3, 3), 2),
            nn.Conv(64, 192, (5, 5), padding=2, rngs=rngs), jax.nn.relu, *lrn(), nn.MaxPool((3, 3), 2),
            nn.Conv(192, 384, (3, 3), padding=1, rngs=rngs), jax.nn.relu,
            nn.Conv(384, 256, (3, 3), padding=1, rngs=rngs), jax.nn.relu,
            nn.Conv(256, 256, (3, 3), padding=1, rngs=rngs), jax.nn.relu, nn.MaxPool((3, 3), 2),
        )
        self.avgpool = nn.AdaptiveAvgPool(self.pool_size)
        self.classifier = nnx.Sequential(
            nn.Dropout(dropout, rngs=rngs), nn.Linear(256 * 6 * 6, 4096, rngs=rngs), jax.nn.relu,
            nn.Dropout(dropout, rngs=rngs), nn.Linear(4096, 4096, rngs=rngs), jax.nn.relu,
            nn.Linear(4096, num_classes, rngs=rngs),
        )


@register()
def alexnet(*, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, local_response_norm: bool = False,
            rngs: nnx.Rngs) -> AlexNet:
    """AlexNet, torchvision's single-GPU variant; optional LRN as in the paper."""
    return AlexNet(num_classes, in_channels, rngs, dropout=dropout, local_response_norm=local_response_norm)
