"""ConvNeXt (Liu et al. 2022), torchvision's layout and module names."""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.blocks import features_then_classifier
from cnnjax.models.registry import register


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)  # PyTorch's nn.GELU() is the exact one


class CNBlock(nnx.Module):
    """7x7 depthwise conv, LayerNorm over channels, Linear to 4x, GELU, Linear back, layer scale, stochastic
    depth, residual. ``(N, H, W, C) -> same``. torchvision's two ``Permute`` layers are identities here
    (channels-last already), kept so the indices match its names."""

    def __init__(self, dim, layer_scale, sd_prob, rngs):
        self.block = nnx.Sequential(
            nn.Conv(dim, dim, (7, 7), padding=3, groups=dim, rngs=rngs), nn.Identity(), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim, rngs=rngs), _gelu, nn.Linear(4 * dim, dim, rngs=rngs), nn.Identity())
        self.layer_scale = nn.LayerScale(dim, layer_scale)
        self.stochastic_depth = nn.StochasticDepth(sd_prob, "row", rngs=rngs)

    def __call__(self, x):
        return self.stochastic_depth(self.layer_scale(self.block(x))) + x


_CONFIGS = {  # (channels, blocks) per stage, and torchvision's default stochastic depth
    "convnext_tiny": ((96, 192, 384, 768), (3, 3, 9, 3), 0.1),
    "convnext_small": ((96, 192, 384, 768), (3, 3, 27, 3), 0.4),
    "convnext_base": ((128, 256, 512, 1024), (3, 3, 27, 3), 0.5),
    "convnext_large": ((192, 384, 768, 1536), (3, 3, 27, 3), 0.5),
}


class ConvNeXt(Model):
    """ConvNeXt: a 4x4 stride-4 stem, four stages of :class:`CNBlock` with LayerNorm + 2x2 stride-2 conv
    downsampling between them, global average pooling, LayerNorm, Linear.

    ``features``: ``stem``, ``stage1``..``stage4`` (the last map at each resolution), ``pre_logits``.
    """

    head_path = ("classifier", "layers", 2)

    def __init__(self, arch, num_classes, in_channels, rngs, *, stochastic_depth_prob=None, layer_scale=1e-6):
        dims, depths, default_sd = _CONFIGS[arch]
        p = default_sd if stochastic_depth_prob is None else stochastic_depth_prob
        layers = [nnx.Sequential(nn.Conv(in_channels, dims[0], (4, 4), stride=4, rngs=rngs),
                                 nn.LayerNorm(dims[0], eps=1e-6))]
        total, index = sum(depths), 0
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            blocks = []
            for _ in range(depth):
                blocks.append(CNBlock(dim, layer_scale, p * index / (total - 1.0), rngs))
                index += 1
            layers.append(nnx.Sequential(*blocks))
            if i + 1 < len(dims):
                layers.append(nnx.Sequential(nn.LayerNorm(dim, eps=1e-6),
                                             nn.Conv(dim, dims[i + 1], (2, 2), stride=2, rngs=rngs)))
        self.features = nnx.Sequential(*layers)
        self.classifier = nnx.Sequential(nn.LayerNorm(dims[-1], eps=1e-6), nn.Identity(),
                                         nn.Linear(dims[-1], num_classes, rngs=rngs))

    def forward(self, x):
        return features_then_classifier(self, x)


def _builder(arch):
    def build(*, num_classes: int = 1000, in_channels: int = 3, stochastic_depth_prob: float | None = None,
              layer_scale: float = 1e-6, rngs: nnx.Rngs) -> ConvNeXt:
        return ConvNeXt(arch, num_classes, in_channels, rngs, stochastic_depth_prob=stochastic_depth_prob,
                        layer_scale=layer_scale)

    build.__doc__ = f"{arch} (torchvision's layout and names; stochastic depth {_CONFIGS[arch][2]} by default)."
    return build


for _arch in _CONFIGS:
    register(_arch)(_builder(_arch))
