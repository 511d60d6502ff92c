"""PyTorch twins of the benchmarked zoo models, built layer for layer like cnnjax's (same parameter counts).

Only imported when torch is installed; torchvision is needed only for the modern families (EfficientNet,
MobileNetV3, ConvNeXt), whose rows are left out without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mnist1d_cnn(num_classes=10):
    """Three Conv1d(15, k3, s2) + ReLU, fc 60 -> classes (2,050 params)."""
    return nn.Sequential(nn.Conv1d(1, 15, 3, 2), nn.ReLU(), nn.Conv1d(15, 15, 3, 2), nn.ReLU(),
                         nn.Conv1d(15, 15, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(60, num_classes))


def simple_cnn(num_classes=10):
    """The lecture's SimpleCNN on 1x28x28 (106,154 params)."""
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(784, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, num_classes))


class _ShortcutA(nn.Module):
    def __init__(self, extra):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet (v1.5: stride on the 3x3 of a bottleneck)."""

    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        cin, stages = 64, []
        for i, n in enumerate(layers):
            planes, stride = 64 * 2 ** i, 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if s != 1 or cin != planes * block.expansion:
                    down = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, s, bias=False),
                                         nn.BatchNorm2d(planes * block.expansion))
                blocks.append(block(cin, planes, s, down))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet with option-A shortcuts."""

    def __init__(self, depth, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        cin, blocks = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                s = stride if i == 0 else 1
                blocks.append(BasicBlock(cin, planes, s, _ShortcutA(planes - cin) if (s != 1 or cin != planes) else None))
                cin = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class _DoubleConv(nn.Sequential):
    def __init__(self, a, b):
        super().__init__(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                         nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU())


class UNet(nn.Module):
    """U-Net as in cnnjax's zoo: DoubleConv (conv-BN-ReLU x2), max pool, 2x2 transposed conv up, concat."""

    def __init__(self, num_classes=2, in_channels=1, depth=4, width=64):
        super().__init__()
        w = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_DoubleConv(a, b) for a, b in zip([in_channels] + w[:-2], w[:-1])])
        self.bottleneck = _DoubleConv(w[-2], w[-1])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, 2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([_DoubleConv(2 * w[i], w[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([skip, up(x)], 1))
        return self.head(x)


def vgg16(num_classes=1000):
    """torchvision's VGG-16 (138,357,544 params), initialised as torchvision does."""
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True),
                          nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def _torchvision(name):
    """torchvision's own model, for the families not rebuilt here; ImportError where torchvision is absent."""

    def build(num_classes=1000):
        import torchvision

        return getattr(torchvision.models, name)(num_classes=num_classes)

    return build


BUILDERS = {
    "mnist1d_cnn": mnist1d_cnn,
    "simple_cnn": simple_cnn,
    "resnet20": lambda num_classes=10: CifarResNet(20, num_classes),
    "resnet18": lambda num_classes=10: ResNet(BasicBlock, (2, 2, 2, 2), num_classes),
    "resnet50": lambda num_classes=1000: ResNet(Bottleneck, (3, 4, 6, 3), num_classes),
    "unet": UNet,
    "vgg16": vgg16,
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large"),
    "convnext_tiny": _torchvision("convnext_tiny"),
}


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
