"""ResNet (He et al. 2016) and ResNeXt, laid out exactly like torchvision, plus the CIFAR ResNets.

Attribute names mirror torchvision's module names (``conv1``, ``bn1``, ``layer1[0].downsample``,
``fc``), so PyTorch state dicts map onto them one to one (:func:`load_torch_state_dict`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.downsample import check_downsample, maybe_subsample
from cnnjax.models.registry import register


def conv3x3(cin, cout, rngs, stride=1, groups=1, padding_mode="zeros"):
    return nn.Conv(cin, cout, (3, 3), stride=stride, padding=1, groups=groups, use_bias=False,
                   padding_mode=padding_mode, rngs=rngs)


def conv1x1(cin, cout, rngs, stride=1):
    return nn.Conv(cin, cout, (1, 1), stride=stride, use_bias=False, rngs=rngs)


class _Residual(nnx.Module):
    """Shared by the blocks: ``subsample`` (None unless ``downsample_mode`` moved the stride out of the conv)."""

    def _shortcut(self, x, phase):
        if self.subsample is not None:
            x = self.subsample(x, phase)  # the main branch's APS phase keeps both branches aligned
        return x if self.downsample is None else self.downsample(x)

    def _sub(self, out):
        return (out, None) if self.subsample is None else self.subsample(out, return_phase=True)


class BasicBlock(_Residual):
    """Two 3x3 convs with a residual connection (ResNet-18/34, CIFAR ResNets).

    With ``downsample_mode`` "blur"/"aps", a strided block runs ``conv1`` at stride 1 and
    subsamples after its ReLU; ``downsample`` (the shortcut) then sees the subsampled input.
    """

    expansion = 1

    def __init__(self, cin, planes, stride, downsample, rngs, *, groups=1, base_width=64, padding_mode="zeros",
                 downsample_mode="stride", blur_size=3, norm="batch"):
        stride, self.subsample = maybe_subsample(downsample_mode, stride, 2, blur_size, padding_mode)
        self.conv1 = conv3x3(cin, planes, rngs, stride, padding_mode=padding_mode)
        self.bn1 = nn.norm_layer(norm, planes, spatial_dims=2)
        self.conv2 = conv3x3(planes, planes, rngs, padding_mode=padding_mode)
        self.bn2 = nn.norm_layer(norm, planes, spatial_dims=2)
        self.downsample = downsample

    def __call__(self, x):
        out, phase = self._sub(jax.nn.relu(self.bn1(self.conv1(x))))
        return jax.nn.relu(self.bn2(self.conv2(out)) + self._shortcut(x, phase))


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided: torchvision's v1.5), 1x1 expand, residual.

    With ``downsample_mode`` "blur"/"aps", ``conv2`` runs at stride 1 and the map is subsampled after its ReLU.
    """

    expansion = 4

    def __init__(self, cin, planes, stride, downsample, rngs, *, groups=1, base_width=64, padding_mode="zeros",
                 downsample_mode="stride", blur_size=3):
        stride, self.subsample = maybe_subsample(downsample_mode, stride, 2, blur_size, padding_mode)
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(cin, width, rngs)
        self.bn1 = nn.BatchNorm(width)
        self.conv2 = conv3x3(width, width, rngs, stride, groups, padding_mode=padding_mode)
        self.bn2 = nn.BatchNorm(width)
        self.conv3 = conv1x1(width, planes * self.expansion, rngs)
        self.bn3 = nn.BatchNorm(planes * self.expansion)
        self.downsample = downsample

    def __call__(self, x):
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out, phase = self._sub(jax.nn.relu(self.bn2(self.conv2(out))))
        return jax.nn.relu(self.bn3(self.conv3(out)) + self._shortcut(x, phase))


def _stages_then_head(model, x, stages, features):
    """Run the residual stages (recording each), global-average-pool, and apply ``model.fc``."""
    for name in stages:
        for block in getattr(model, name):
            x = block(x)
        features[name] = x
    x = F.global_avg_pool(x, spatial_dims=2)
    features["pre_logits"] = x
    return model.fc(x), features


class ResNet(Model):
    """ImageNet ResNet/ResNeXt, torchvision's layout. Input ``(*batch, H, W, C)``, e.g. 224x224.

    ``features``: ``stem`` (after the max pool), ``layer1``..``layer4``, ``pre_logits`` (pooled).

    ``downsample="blur"`` or ``"aps"`` moves every stride (the 7x7 stem conv, the max pool, the
    blocks, the shortcuts) into a BlurPool/APS after a stride-1 op (see
    :mod:`cnnjax.models.downsample`); ``blur_size`` is the binomial filter's size.
    """

    head_path = ("fc",)

    def __init__(self, block, layers: Sequence[int], num_classes: int, in_channels: int, rngs: nnx.Rngs, *,
                 groups: int = 1, width_per_group: int = 64, zero_init_residual: bool = False,
                 downsample: str = "stride", blur_size: int = 3):
        check_downsample(downsample, blur_size, "ResNet")
        self.inplanes = 64
        conv_stride, sub = maybe_subsample(downsample, 2, 2, blur_size)
        self.conv1 = nn.Conv(in_channels, 64, (7, 7), stride=conv_stride, padding=3, use_bias=False, rngs=rngs)
        self.bn1 = nn.BatchNorm(64)
        self.stem_subsample = sub
        pool_stride, sub = maybe_subsample(downsample, 2, 2, blur_size)
        self.maxpool = nn.MaxPool((3, 3), pool_stride, 1)
        self.pool_subsample = sub
        kw = dict(groups=groups, base_width=width_per_group, downsample_mode=downsample, blur_size=blur_size)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, rngs, kw)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, rngs, kw)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, rngs, kw)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, rngs, kw)
        self.fc = nn.Linear(512 * block.expansion, num_classes, rngs=rngs)
        if zero_init_residual:  # each residual branch starts as the identity (Goyal et al. 2017)
            for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
                for b in stage:
                    last = b.bn3 if isinstance(b, Bottleneck) else b.bn2
                    last.scale[...] = jnp.zeros_like(last.scale[...])

    def _make_layer(self, block, planes, blocks, stride, rngs, kw):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Blur/APS blocks subsample the shortcut's input themselves (sharing the main branch's phase).
            shortcut_stride = stride if kw["downsample_mode"] == "stride" else 1
            downsample = nnx.Sequential(conv1x1(self.inplanes, planes * block.expansion, rngs, shortcut_stride),
                                        nn.BatchNorm(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, rngs, **kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, rngs, **kw) for _ in range(1, blocks)]
        return nnx.List(layers)

    def forward(self, x):
        features = {}
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = x if self.stem_subsample is None else self.stem_subsample(x)
        x = self.maxpool(x)
        x = x if self.pool_subsample is None else self.pool_subsample(x)
        features["stem"] = x
        return _stages_then_head(self, x, ("layer1", "layer2", "layer3", "layer4"), features)


_IMAGENET = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), {}),
    "resnet34": (BasicBlock, (3, 4, 6, 3), {}),
    "resnet50": (Bottleneck, (3, 4, 6, 3), {}),
    "resnet101": (Bottleneck, (3, 4, 23, 3), {}),
    "resnet152": (Bottleneck, (3, 8, 36, 3), {}),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), {"groups": 32, "width_per_group": 4}),
    "resnext101_32x8d": (Bottleneck, (3, 4, 23, 3), {"groups": 32, "width_per_group": 8}),
    "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), {"groups": 64, "width_per_group": 4}),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3), {"width_per_group": 128}),
    "wide_resnet101_2": (Bottleneck, (3, 4, 23, 3), {"width_per_group": 128}),
}


def _imagenet_builder(name):
    block, layers, extra = _IMAGENET[name]

    def build(*, num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False,
              downsample: str = "stride", blur_size: int = 3, rngs: nnx.Rngs):
        return ResNet(block, layers, num_classes, in_channels, rngs, zero_init_residual=zero_init_residual,
                      downsample=downsample, blur_size=blur_size, **extra)

    build.__doc__ = (f"{name}: torchvision's architecture ({block.__name__} blocks {layers}"
                     f"{', ' + str(extra) if extra else ''}); downsample='blur'|'aps' for shift studies.")
    return build


for _name in _IMAGENET:
    register(_name)(_imagenet_builder(_name))


class ShortcutA(nnx.Module):
    """He et al.'s CIFAR option A: subsample by 2 and zero-pad the new channels (no parameters).

    ``subsample=False`` when the block has already subsampled the input (blur/APS modes).
    """

    def __init__(self, extra_channels: int, subsample: bool = True):
        self.extra, self.subsample = extra_channels, subsample

    def __call__(self, x):
        x = x[..., ::2, ::2, :] if self.subsample else x
        pad = [(0, 0)] * (x.ndim - 1) + [(self.extra // 2, self.extra - self.extra // 2)]
        return jnp.pad(x, pad)


class CifarResNet(Model):
    """He et al.'s CIFAR ResNet (depth 6n+2): 3x3 stem, three stages of 16/32/64 channels, global pool, fc.

    Option-A (parameter-free) shortcuts, as in the paper: resnet20 has 269,722 params.
    ``features``: ``stem``, ``layer1``..``layer3``, ``pre_logits``.

    ``downsample="blur"``/``"aps"`` subsamples the two strided blocks with BlurPool/APS (both
    branches alike); with ``padding_mode="circular"`` and ``"aps"`` the network is exactly
    invariant to circular shifts of its input. ``norm`` ("batch", "group", "layer", "instance",
    "none"; see :func:`cnnjax.nn.norm_layer`) replaces every batch norm, for ablations; the
    attribute names stay ``bn1``/``bn2``.
    """

    head_path = ("fc",)

    def __init__(self, depth: int, num_classes: int, in_channels: int, rngs: nnx.Rngs, *, padding_mode: str = "zeros",
                 downsample: str = "stride", blur_size: int = 3, norm: str = "batch"):
        check_downsample(downsample, blur_size, "CifarResNet")
        if norm not in nn.NORM_KINDS:
            raise ValueError(f"CifarResNet: norm must be one of {nn.NORM_KINDS}, got norm={norm!r}")
        if (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 (20, 32, 44, 56, 110...), got depth={depth}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, 16, rngs, padding_mode=padding_mode)
        self.bn1 = nn.norm_layer(norm, 16, spatial_dims=2)
        cin, stages = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                shortcut = ShortcutA(planes - cin, downsample == "stride") if (s != 1 or cin != planes) else None
                blocks.append(BasicBlock(cin, planes, s, shortcut, rngs, padding_mode=padding_mode,
                                         downsample_mode=downsample, blur_size=blur_size, norm=norm))
                cin = planes
            stages.append(nnx.List(blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes, rngs=rngs)

    def forward(self, x):
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        return _stages_then_head(self, x, ("layer1", "layer2", "layer3"), {"stem": x})


def _cifar_builder(depth):
    def build(*, num_classes: int = 10, in_channels: int = 3, padding_mode: str = "zeros", downsample: str = "stride",
              blur_size: int = 3, norm: str = "batch", rngs: nnx.Rngs):
        return CifarResNet(depth, num_classes, in_channels, rngs, padding_mode=padding_mode, downsample=downsample,
                           blur_size=blur_size, norm=norm)

    build.__doc__ = (f"resnet{depth} for 32x32 inputs (He et al. 2016, Sec. 4.2), option-A shortcuts; "
                     "downsample='blur'|'aps' for shift studies; norm='batch'|'group'|'layer'|'instance'|'none' for ablations.")
    return build


for _depth in (20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(_cifar_builder(_depth))
