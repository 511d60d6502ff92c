"""The course's small networks: SimpleCNN, LargeNet, LeNet-5, and the MNIST-1D models."""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import Model, run_stages
from cnnjax.models.downsample import check_downsample, maybe_subsample
from cnnjax.models.registry import register


def _conv_relu_pool(cin, cout, k, pad, rngs):
    return nnx.Sequential(nn.Conv(cin, cout, (k, k), padding=pad, rngs=rngs), jax.nn.relu, nn.MaxPool((2, 2)))


class ConvMLP(Model):
    """Conv stages, flatten, then a ReLU MLP: the shape of SimpleCNN, LargeNet and LeNet-5.

    ``features``: each conv stage (``conv1``, ``conv2``...), ``pre_logits`` (the last hidden layer).
    """

    def __init__(self, convs: list[nnx.Module], flat: int, hidden: tuple[int, ...], num_classes: int,
                 spatial_dims: int, rngs: nnx.Rngs):
        self.stage_names = tuple(f"conv{i + 1}" for i in range(len(convs)))
        for name, layer in zip(self.stage_names, convs):
            setattr(self, name, layer)
        self.flatten = nn.Flatten(spatial_dims + 1)
        sizes = (flat, *hidden)
        self.hidden = nnx.List([nn.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nn.Linear(sizes[-1], num_classes, rngs=rngs)

    def forward(self, x):
        features = {}
        x = self.flatten(run_stages(self, x, self.stage_names, features))
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        features["pre_logits"] = x
        return self.head(x), features


@register()
def simple_cnn(*, num_classes: int = 10, in_channels: int = 1, rngs: nnx.Rngs) -> ConvMLP:
    """The lecture's SimpleCNN (106,154 params), 28x28 input.

    conv 1->6 3x3 pad 1, ReLU, 2x2 max pool; conv 6->16 3x3 pad 1, ReLU, pool; fc 784->120->84->classes.
    """
    convs = [_conv_relu_pool(in_channels, 6, 3, 1, rngs), _conv_relu_pool(6, 16, 3, 1, rngs)]
    return ConvMLP(convs, 16 * 7 * 7, (120, 84), num_classes, 2, rngs)


@register()
def large_net(*, num_classes: int = 10, in_channels: int = 3, rngs: nnx.Rngs) -> ConvMLP:
    """LargeNet (10,002 params), 32x32 input: conv 3->5 5x5, pool, conv 5->10 5x5, pool, fc 250->32->classes."""
    convs = [_conv_relu_pool(in_channels, 5, 5, 0, rngs), _conv_relu_pool(5, 10, 5, 0, rngs)]
    return ConvMLP(convs, 10 * 5 * 5, (32,), num_classes, 2, rngs)


@register()
def lenet5(*, num_classes: int = 10, in_channels: int = 1, rngs: nnx.Rngs) -> ConvMLP:
    """LeNet-5 in its modern form (61,706 params), 32x32 input: ReLU and max pooling.

    conv 6 5x5, pool, conv 16 5x5, pool, fc 400->120->84->classes.
    """
    convs = [_conv_relu_pool(in_channels, 6, 5, 0, rngs), _conv_relu_pool(6, 16, 5, 0, rngs)]
    return ConvMLP(convs, 16 * 5 * 5, (120, 84), num_classes, 2, rngs)


HEADS = ("flatten", "global")
PADDINGS = ("published", "same")


class PlainConvNet(Model):
    """A stack of conv + ReLU layers and a linear head, in 1-D or 2-D (the MNIST-1D CNNs, ``digits_cnn``).

    Input ``(*batch, *size, C)``; ``features``: ``conv1``... and ``pre_logits``. ``layers``
    are ``(in, out, kernel, stride, padding)``, the same along every spatial axis.

    Options for shift studies: ``padding`` ("published", or "same": ``k // 2``, so stride-1
    convs keep the size); ``padding_mode`` of every conv; ``downsample`` ("stride" as
    published; "max", "avg", "blur" or "aps": each strided conv runs at stride 1, then ReLU,
    then a max/avg pool, BlurPool or APS, see :mod:`cnnjax.models.downsample`); ``head``
    ("flatten" as published, or "global": average over positions, then the linear layer).
    """

    def __init__(self, layers: list[tuple[int, int, int, int, int]], size: tuple[int, ...], num_classes: int,
                 rngs: nnx.Rngs, *, padding: str = "published", padding_mode: str = "zeros", downsample: str = "stride",
                 blur_size: int = 3, head: str = "flatten"):
        check_downsample(downsample, blur_size, "PlainConvNet")
        if head not in HEADS:
            raise ValueError(f"PlainConvNet: head must be one of {HEADS}, got head={head!r}")
        if padding not in PADDINGS:
            raise ValueError(f"PlainConvNet: padding must be one of {PADDINGS}, got padding={padding!r}")
        if padding == "same":  # odd kernels keep the size, so circular padding makes every conv shift-equivariant
            layers = [(cin, cout, k, s, k // 2) for cin, cout, k, s, _ in layers]
        dims = len(size)
        self.stage_names = tuple(f"conv{i + 1}" for i in range(len(layers)))
        for name, (cin, cout, k, s, p) in zip(self.stage_names, layers):
            conv_stride, sub = maybe_subsample(downsample, s, dims, blur_size, padding_mode)
            conv = nn.Conv(cin, cout, (k,) * dims, stride=conv_stride, padding=p, padding_mode=padding_mode, rngs=rngs)
            setattr(self, name, nnx.Sequential(conv, jax.nn.relu, *([sub] if sub else [])))
            size = tuple((n + 2 * p - k) // s + 1 for n in size)
        self.head_kind = head
        self.flatten = nn.Flatten(dims + 1) if head == "flatten" else nn.GlobalAvgPool(spatial_dims=dims)
        positions = int(np.prod(size)) if head == "flatten" else 1
        self.head = nn.Linear(positions * layers[-1][1], num_classes, rngs=rngs)

    def forward(self, x):
        features = {}
        x = self.flatten(run_stages(self, x, self.stage_names, features))
        features["pre_logits"] = x
        return self.head(x), features


_SHIFT_OPTIONS = """

    Shift options (see :class:`PlainConvNet`): ``padding`` ("published", "same"), ``padding_mode``,
    ``downsample`` ("stride", "max", "avg", "blur", "aps"), ``blur_size``, ``head`` ("flatten", "global"). Exactly
    shift-invariant: ``padding="same", padding_mode="circular", downsample="aps", head="global"``."""


@register()
def mnist1d_cnn(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, padding: str = "published",
                padding_mode: str = "zeros", downsample: str = "stride", blur_size: int = 3, head: str = "flatten",
                rngs: nnx.Rngs) -> PlainConvNet:
    """The lecture's 2,050-parameter MNIST-1D CNN: three Conv1d(15, k3, s2, no padding) + ReLU, fc 60->10."""
    layers = [(in_channels, 15, 3, 2, 0), (15, 15, 3, 2, 0), (15, 15, 3, 2, 0)]
    return PlainConvNet(layers, (length,), num_classes, rngs, padding=padding, padding_mode=padding_mode,
                     downsample=downsample, blur_size=blur_size, head=head)


@register()
def mnist1d_convbase(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, padding: str = "published",
                     padding_mode: str = "zeros", downsample: str = "stride", blur_size: int = 3,
                     head: str = "flatten", rngs: nnx.Rngs) -> PlainConvNet:
    """Greydanus' MNIST-1D ConvBase (5,210 params): Conv1d 1->25 k5 s2 p1, 25->25 k3 s2 p1 twice, fc 125->10."""
    layers = [(in_channels, 25, 5, 2, 1), (25, 25, 3, 2, 1), (25, 25, 3, 2, 1)]
    return PlainConvNet(layers, (length,), num_classes, rngs, padding=padding, padding_mode=padding_mode,
                     downsample=downsample, blur_size=blur_size, head=head)


@register()
def digits_cnn(*, num_classes: int = 10, in_channels: int = 1, size: int = 8, padding: str = "published",
               padding_mode: str = "zeros", downsample: str = "stride", blur_size: int = 3, head: str = "flatten",
               rngs: nnx.Rngs) -> PlainConvNet:
    """A small 2-D CNN for 8x8 ``digits`` (15,338 params): 3x3 convs 1->16 (s1), 16->32 (s2), 32->32 (s2), fc 128->10.

    Every conv pads by 1, so 8x8 -> 8x8 -> 4x4 -> 2x2; the two strided convs are where
    ``downsample`` acts."""
    layers = [(in_channels, 16, 3, 1, 1), (16, 32, 3, 2, 1), (32, 32, 3, 2, 1)]
    return PlainConvNet(layers, (size, size), num_classes, rngs, padding=padding, padding_mode=padding_mode,
                        downsample=downsample, blur_size=blur_size, head=head)


for _fn in (mnist1d_cnn, mnist1d_convbase, digits_cnn):
    _fn.__doc__ += _SHIFT_OPTIONS


class MLP(Model):
    """A ReLU MLP on the flattened input: ``fc1 ... fcN`` then a linear ``head``.

    With ``residual=True`` (the MNIST-1D paper's baseline) every hidden layer after the first adds
    its input, ``h_i = relu(W_i h_{i-1}) + h_{i-1}``, so the hidden widths must be equal; otherwise
    it is the plain ``Linear -> ReLU`` stack of a PyTorch ``nn.Sequential``.
    Input ``(*batch, length, C)`` or ``(*batch, length)``; ``features``: each ``fc<i>`` and ``pre_logits``.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int, rngs: nnx.Rngs,
                 residual: bool = False):
        if residual and len(set(hidden)) > 1:
            raise ValueError(f"MLP: residual=True needs equal hidden widths, got hidden={hidden}")
        self.in_features = in_features
        self.residual = residual
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden)))
        widths = (in_features, *hidden)
        for name, cin, cout in zip(self.layer_names, widths[:-1], widths[1:]):
            setattr(self, name, nn.Linear(cin, cout, rngs=rngs))
        self.head = nn.Linear(widths[-1], num_classes, rngs=rngs)

    def forward(self, x):
        x = x.reshape(x.shape[: x.ndim - 2] + (-1,)) if x.shape[-1] != self.in_features else x
        features = {}
        for i, name in enumerate(self.layer_names):
            h = jax.nn.relu(getattr(self, name)(x))
            x = h + x if self.residual and i > 0 else h
            features[name] = x
        features["pre_logits"] = x
        return self.head(x), features


class Logistic(Model):
    """Multinomial logistic regression on the flattened input (the MNIST-1D linear baseline)."""

    def __init__(self, in_features: int, num_classes: int, rngs: nnx.Rngs):
        self.in_features = in_features
        self.head = nn.Linear(in_features, num_classes, rngs=rngs)

    def forward(self, x):
        x = x.reshape(x.shape[: x.ndim - 2] + (-1,)) if x.shape[-1] != self.in_features else x
        return self.head(x), {"pre_logits": x}


@register()
def mlp(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, hidden: int | Sequence[int] = 100,
        rngs: nnx.Rngs) -> MLP:
    """MNIST-1D MLP: 15,210 params at the defaults.

    ``hidden=100`` (an int) is the MNIST-1D paper's baseline, two hidden layers of that width with
    the second residual. A sequence of widths gives the plain ``Linear -> ReLU`` stack instead:
    ``hidden=(256, 262, 265)`` is our reading of the CNN lecture's 150,185-parameter fully connected
    network (the lecture gives only the count; see ``experiments/mnist1d_lecture.py``).
    """
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        widths, residual = (int(hidden),) * 2, True
    elif isinstance(hidden, Sequence) and not isinstance(hidden, str) and len(hidden) > 0 \
            and all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) for h in hidden):
        widths, residual = tuple(int(h) for h in hidden), False
    else:
        raise TypeError(f"mlp: hidden must be an int or a non-empty sequence of ints, got {hidden!r}")
    if min(widths) < 1:
        raise ValueError(f"mlp: hidden widths must be >= 1, got hidden={hidden!r}")
    return MLP(length * in_channels, widths, num_classes, rngs, residual=residual)


@register()
def logistic(*, num_classes: int = 10, in_channels: int = 1, length: int = 40, rngs: nnx.Rngs) -> Logistic:
    """MNIST-1D logistic-regression baseline (410 params at the defaults)."""
    return Logistic(length * in_channels, num_classes, rngs)
