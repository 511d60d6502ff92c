"""torchvision's DenseNet and Inception v3, written out with its module names and forward passes, for
tests where torchvision itself is absent (CI installs only torch). Built with ``torch`` passed in, so
importing this file never needs torch."""

from collections import OrderedDict


def densenet(torch, growth, block_config, num_init, num_classes, bn_size=4):
    """torchvision.models.DenseNet(growth, block_config, num_init, bn_size, drop_rate=0, num_classes)."""
    tnn, F = torch.nn, torch.nn.functional

    class DenseLayer(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.norm1, self.relu1 = tnn.BatchNorm2d(cin), tnn.ReLU()
            self.conv1 = tnn.Conv2d(cin, bn_size * growth, 1, bias=False)
            self.norm2, self.relu2 = tnn.BatchNorm2d(bn_size * growth), tnn.ReLU()
            self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, features):
            x = torch.cat(features, 1)
            return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))

    class DenseBlock(tnn.ModuleDict):
        def __init__(self, n, cin):
            super().__init__()
            for i in range(n):
                self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth))

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    class Transition(tnn.Sequential):
        def __init__(self, cin, cout):
            super().__init__()
            self.norm, self.relu = tnn.BatchNorm2d(cin), tnn.ReLU()
            self.conv, self.pool = tnn.Conv2d(cin, cout, 1, bias=False), tnn.AvgPool2d(2, 2)

    class DenseNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(OrderedDict([
                ("conv0", tnn.Conv2d(3, num_init, 7, 2, 3, bias=False)), ("norm0", tnn.BatchNorm2d(num_init)),
                ("relu0", tnn.ReLU()), ("pool0", tnn.MaxPool2d(3, 2, 1))]))
            c = num_init
            for i, n in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c))
                c += n * growth
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                    c //= 2
            self.features.add_module("norm5", tnn.BatchNorm2d(c))
            self.classifier = tnn.Linear(c, num_classes)

        def forward(self, x):
            x = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
            return self.classifier(torch.flatten(x, 1))

    return DenseNet()


def inception_v3(torch, num_classes, aux_logits=True, transform_input=False):
    """torchvision.models.Inception3(num_classes, aux_logits, transform_input, dropout=0.5)."""
    tnn, F = torch.nn, torch.nn.functional

    class BasicConv2d(tnn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv, self.bn = tnn.Conv2d(cin, cout, bias=False, **kw), tnn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class InceptionA(tnn.Module):
        def __init__(self, cin, pool_features):
            super().__init__()
            self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
            self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
            self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
            self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
            self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
            self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
            self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

        def forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
            return torch.cat([self.branch1x1(x), b5, b3, bp], 1)

    class InceptionB(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
            self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
            self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
            self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

        def forward(self, x):
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)

    class InceptionC(tnn.Module):
        def __init__(self, cin, c7):
            super().__init__()
            self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
            self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
            self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
            self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
            self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
            self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
            self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
            self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
            self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
            self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for i in range(1, 6):
                d = getattr(self, f"branch7x7dbl_{i}")(d)
            bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
            return torch.cat([self.branch1x1(x), b7, d, bp], 1)

    class InceptionD(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
            self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
            self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
            self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
            self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
            self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

        def forward(self, x):
            b7 = x
            for i in range(1, 5):
                b7 = getattr(self, f"branch7x7x3_{i}")(b7)
            return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)

    class InceptionE(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
            self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
            self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
            self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
            self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
            self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
            self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
            self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
            self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
            return torch.cat([self.branch1x1(x), b3, d, bp], 1)

    class InceptionAux(tnn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv0 = BasicConv2d(cin, 128, kernel_size=1)
            self.conv1 = BasicConv2d(128, 768, kernel_size=5)
            self.fc = tnn.Linear(768, num_classes)

        def forward(self, x):
            x = self.conv1(self.conv0(F.avg_pool2d(x, kernel_size=5, stride=3)))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))

    class Inception3(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transform_input = transform_input
            self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
            self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
            self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
            self.maxpool1 = tnn.MaxPool2d(kernel_size=3, stride=2)
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
            self.maxpool2 = tnn.MaxPool2d(kernel_size=3, stride=2)
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
            self.Mixed_6a = InceptionB(288)
            self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
            self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
            self.AuxLogits = InceptionAux(768) if aux_logits else None
            self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = InceptionD(768), InceptionE(1280), InceptionE(2048)
            self.avgpool, self.dropout = tnn.AdaptiveAvgPool2d((1, 1)), tnn.Dropout(0.5)
            self.fc = tnn.Linear(2048, num_classes)

        def forward(self, x):
            if self.transform_input:
                x = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                               x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                               x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
            x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
            x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
            for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
                x = getattr(self, name)(x)
            aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
            x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
            x = self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))
            return (x, aux) if aux is not None else x

    return Inception3()
