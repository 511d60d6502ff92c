"""Plain Flax NNX twins of the benchmarked zoo models, written the way Flax's examples write them.

``nnx.Conv``, ``nnx.BatchNorm``, ``nnx.ConvTranspose``, ``nnx.Linear``, ``nnx.max_pool`` and ``jax.nn.relu``, with no
cnnjax import: the "naive Flax" peer measures what a researcher gets from Flax alone. Layer for layer they are
the models of :mod:`benchmarks.torch_models` (and of cnnjax's zoo), so the parameter counts match. Inputs are
channels-last, ``(N, *spatial, C)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _bn(c: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    # the momentum and epsilon of Flax's ImageNet example (PyTorch's defaults, written the Flax way)
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs)


class MNIST1DCNN(nnx.Module):
    """Three Conv(15, k3, s2, VALID) + ReLU, Linear 60 -> classes (2,050 params). Input ``(N, 40, 1)``."""

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.convs = nnx.List([nnx.Conv(c, 15, (3,), strides=2, padding="VALID", rngs=rngs) for c in (1, 15, 15)])
        self.fc = nnx.Linear(60, num_classes, rngs=rngs)

    def __call__(self, x):
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.fc(x.reshape(x.shape[0], -1))


class SimpleCNN(nnx.Module):
    """The lecture's SimpleCNN on ``(N, 28, 28, 1)`` (106,154 params)."""

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 6, (3, 3), padding=1, rngs=rngs)
        self.conv2 = nnx.Conv(6, 16, (3, 3), padding=1, rngs=rngs)
        self.fc1 = nnx.Linear(784, 120, rngs=rngs)
        self.fc2 = nnx.Linear(120, 84, rngs=rngs)
        self.fc3 = nnx.Linear(84, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.max_pool(jax.nn.relu(self.conv1(x)), (2, 2), strides=(2, 2))
        x = nnx.max_pool(jax.nn.relu(self.conv2(x)), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return self.fc3(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, planes: int, stride: int, projection: bool, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, planes, (3, 3), strides=stride, padding=1, use_bias=False, rngs=rngs)
        self.bn1 = _bn(planes, rngs)
        self.conv2 = nnx.Conv(planes, planes, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn2 = _bn(planes, rngs)
        self.stride, self.extra = stride, planes - cin
        self.proj = nnx.Sequential(nnx.Conv(cin, planes, (1, 1), strides=stride, use_bias=False, rngs=rngs),
                                   _bn(planes, rngs)) if projection else None

    def shortcut(self, x):
        if self.proj is not None:
            return self.proj(x)
        if self.stride == 1 and self.extra == 0:
            return x
        # He et al.'s option A: subsample, then zero-pad the new channels
        x = x[:, ::self.stride, ::self.stride]
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (self.extra // 2, self.extra - self.extra // 2)))

    def __call__(self, x):
        y = self.bn2(self.conv2(jax.nn.relu(self.bn1(self.conv1(x)))))
        return jax.nn.relu(y + self.shortcut(x))


class Bottleneck(nnx.Module):
    def __init__(self, cin: int, planes: int, stride: int, projection: bool, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, planes, (1, 1), use_bias=False, rngs=rngs)
        self.bn1 = _bn(planes, rngs)
        self.conv2 = nnx.Conv(planes, planes, (3, 3), strides=stride, padding=1, use_bias=False, rngs=rngs)
        self.bn2 = _bn(planes, rngs)
        self.conv3 = nnx.Conv(planes, 4 * planes, (1, 1), use_bias=False, rngs=rngs)
        self.bn3 = _bn(4 * planes, rngs)
        self.proj = nnx.Sequential(nnx.Conv(cin, 4 * planes, (1, 1), strides=stride, use_bias=False, rngs=rngs),
                                   _bn(4 * planes, rngs)) if projection else None

    def __call__(self, x):
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return jax.nn.relu(y + (x if self.proj is None else self.proj(x)))


class ResNet(nnx.Module):
    """torchvision's ResNet (v1.5: the stride on a bottleneck's 3x3), as Flax's ImageNet example builds it."""

    def __init__(self, block: type, layers: tuple[int, ...], num_classes: int = 1000, *, rngs: nnx.Rngs):
        expansion = 4 if block is Bottleneck else 1
        self.conv = nnx.Conv(3, 64, (7, 7), strides=2, padding=3, use_bias=False, rngs=rngs)
        self.bn = _bn(64, rngs)
        cin, blocks = 64, []
        for i, n in enumerate(layers):
            planes = 64 * 2 ** i
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(cin, planes, stride, stride != 1 or cin != planes * expansion, rngs=rngs))
                cin = planes * expansion
        self.blocks = nnx.List(blocks)
        self.fc = nnx.Linear(cin, num_classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.bn(self.conv(x)))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((1, 2)))


class CifarResNet(nnx.Module):
    """He et al.'s CIFAR ResNet (depth 6n + 2) with option-A shortcuts."""

    def __init__(self, depth: int, num_classes: int = 10, *, rngs: nnx.Rngs):
        n = (depth - 2) // 6
        self.conv = nnx.Conv(3, 16, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn = _bn(16, rngs)
        cin, blocks = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(cin, planes, stride if i == 0 else 1, False, rngs=rngs))
                cin = planes
        self.blocks = nnx.List(blocks)
        self.fc = nnx.Linear(64, num_classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.bn(self.conv(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((1, 2)))


class DoubleConv(nnx.Module):
    def __init__(self, a: int, b: int, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Conv(a, b, (3, 3), padding=1, use_bias=False, rngs=rngs), _bn(b, rngs),
                                nnx.Conv(b, b, (3, 3), padding=1, use_bias=False, rngs=rngs), _bn(b, rngs)])

    def __call__(self, x):
        c1, b1, c2, b2 = self.layers
        return jax.nn.relu(b2(c2(jax.nn.relu(b1(c1(x))))))


class UNet(nnx.Module):
    """U-Net: DoubleConv (conv-BN-ReLU x2), 2x2 max pool down, 2x2 stride-2 transposed conv up, concatenate."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1, depth: int = 4, width: int = 64, *,
                 rngs: nnx.Rngs):
        w = [width * 2 ** i for i in range(depth + 1)]
        self.down = nnx.List([DoubleConv(a, b, rngs=rngs) for a, b in zip([in_channels] + w[:-2], w[:-1])])
        self.bottleneck = DoubleConv(w[-2], w[-1], rngs=rngs)
        self.up = nnx.List([nnx.ConvTranspose(w[i + 1], w[i], (2, 2), strides=2, padding="VALID", rngs=rngs)
                            for i in reversed(range(depth))])
        self.dec = nnx.List([DoubleConv(2 * w[i], w[i], rngs=rngs) for i in reversed(range(depth))])
        self.head = nnx.Conv(width, num_classes, (1, 1), rngs=rngs)

    def __call__(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(jnp.concatenate([skip, up(x)], axis=-1))
        return self.head(x)


BUILDERS = {
    "mnist1d_cnn": lambda num_classes=10, *, rngs: MNIST1DCNN(num_classes, rngs=rngs),
    "simple_cnn": lambda num_classes=10, *, rngs: SimpleCNN(num_classes, rngs=rngs),
    "resnet20": lambda num_classes=10, *, rngs: CifarResNet(20, num_classes, rngs=rngs),
    "resnet18": lambda num_classes=10, *, rngs: ResNet(BasicBlock, (2, 2, 2, 2), num_classes, rngs=rngs),
    "resnet50": lambda num_classes=1000, *, rngs: ResNet(Bottleneck, (3, 4, 6, 3), num_classes, rngs=rngs),
    "unet": lambda num_classes=2, *, rngs: UNet(num_classes, rngs=rngs),
}
