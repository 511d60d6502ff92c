"""load_torch_state_dict: the same tiny ResNets and VGG built in PyTorch (torchvision's module names)
give the same outputs after loading. Skipped cleanly without torch."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models
from cnnjax.models.densenet import DenseNet
from cnnjax.models.resnet import BasicBlock, Bottleneck, ResNet
from cnnjax.models.vgg import VGG
from tests.functional import reference as ref


# jitted: op by op, every layer's ops would compile one program each
_forward = nnx.jit(lambda model, x: model(x))


def _torch_resnet(torch, bottleneck, layers, num_classes, groups=1, width_per_group=64):
    tnn = torch.nn

    class Block(tnn.Module):
        expansion = 4 if bottleneck else 1

        def __init__(self, cin, planes, stride, downsample):
            super().__init__()
            if bottleneck:
                width = int(planes * width_per_group / 64) * groups
                self.conv1, self.bn1 = tnn.Conv2d(cin, width, 1, bias=False), tnn.BatchNorm2d(width)
                self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
                self.bn2 = tnn.BatchNorm2d(width)
                self.conv3, self.bn3 = tnn.Conv2d(width, planes * 4, 1, bias=False), tnn.BatchNorm2d(planes * 4)
            else:
                self.conv1, self.bn1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False), tnn.BatchNorm2d(planes)
                self.conv2, self.bn2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False), tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if bottleneck:
                out = self.bn3(self.conv3(torch.relu(out)))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin, stages = 64, []
            for planes, n, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
                blocks = []
                for i in range(n):
                    s = stride if i == 0 else 1
                    down = None
                    if s != 1 or cin != planes * Block.expansion:
                        down = tnn.Sequential(tnn.Conv2d(cin, planes * Block.expansion, 1, s, bias=False), tnn.BatchNorm2d(planes * Block.expansion))
                    blocks.append(Block(cin, planes, s, down))
                    cin = planes * Block.expansion
                stages.append(tnn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.fc = tnn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return Net()


def _randomise_batchnorm(torch, net):
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g) * 0.2 + 1)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("bottleneck, layers, groups, width", [(False, (1, 1, 1, 1), 1, 64), (True, (1, 1, 1, 1), 1, 64), (True, (1, 1, 1, 1), 4, 8)])
def test_resnet_outputs_match_torch_after_loading(torch, bottleneck, layers, groups, width):
    tnet = _torch_resnet(torch, bottleneck, layers, 5, groups, width)
    with torch.no_grad():
        _randomise_batchnorm(torch, tnet)
    tnet.eval()
    x = np.random.default_rng(0).normal(size=(2, 40, 40, 3))
    with torch.no_grad():
        expected = tnet(torch.tensor(ref.channels_first(x))).numpy()
    block = Bottleneck if bottleneck else BasicBlock
    model = ResNet(block, layers, 5, 3, nnx.Rngs(0), groups=groups, width_per_group=width)
    models.load_torch_state_dict(model, tnet.state_dict())
    model.eval()
    np.testing.assert_allclose(_forward(model, jnp.asarray(x, jnp.float32)), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_outputs_match_torch_after_loading(torch, batch_norm):
    tnn = torch.nn
    cfg = [8, "M", 16, "M"]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2))
        else:
            layers += [tnn.Conv2d(cin, v, 3, padding=1)] + ([tnn.BatchNorm2d(v)] if batch_norm else []) + [tnn.ReLU()]
            cin = v
    tnet = tnn.Module()
    tnet.features = tnn.Sequential(*layers)
    tnet.avgpool = tnn.AdaptiveAvgPool2d(7)
    tnet.classifier = tnn.Sequential(tnn.Linear(16 * 49, 32), tnn.ReLU(), tnn.Dropout(), tnn.Linear(32, 32), tnn.ReLU(), tnn.Dropout(), tnn.Linear(32, 5))
    with torch.no_grad():
        _randomise_batchnorm(torch, tnet)
    tnet.eval()
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3))  # 8x8 after the pools: the adaptive pool really averages
    with torch.no_grad():
        feats = tnet.avgpool(tnet.features(torch.tensor(ref.channels_first(x))))
        expected = tnet.classifier(torch.flatten(feats, 1)).numpy()
    model = VGG(cfg, 5, 3, nnx.Rngs(0), batch_norm=batch_norm, hidden=32)
    models.load_torch_state_dict(model, tnet.state_dict())
    model.eval()
    np.testing.assert_allclose(_forward(model, jnp.asarray(x, jnp.float32)), expected, rtol=1e-4, atol=1e-4)


def test_mismatched_state_dict_is_a_clear_error(torch):
    tnet = _torch_resnet(torch, False, (1, 1, 1, 1), 5)
    model = ResNet(BasicBlock, (1, 1, 1, 1), 7, 3, nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"load_torch_state_dict\(ResNet\): shape mismatches: fc.bias: torch \(5,\) -> expected \(7,\); fc.weight: torch \(512, 5\) -> expected \(512, 7\)"):
        models.load_torch_state_dict(model, tnet.state_dict())
    state = dict(tnet.state_dict())
    state["extra.weight"] = state.pop("fc.weight")
    model = ResNet(BasicBlock, (1, 1, 1, 1), 5, 3, nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"missing from the state dict: \['fc.weight'\] \| unexpected keys in the state dict: \['extra.weight'\]"):
        models.load_torch_state_dict(model, state)


def test_densenet_takes_a_torchvision_state_dict_as_it_is(torch):
    from tests.models.torchvision_twins import densenet

    tnet = densenet(torch, growth=4, block_config=(2, 3), num_init=8, num_classes=5, bn_size=2)
    with torch.no_grad():
        _randomise_batchnorm(torch, tnet)
    tnet.eval()
    x = np.random.default_rng(2).normal(size=(2, 48, 40, 3))
    with torch.no_grad():
        expected = tnet(torch.tensor(ref.channels_first(x))).numpy()
    model = DenseNet(4, (2, 3), 8, 5, 3, nnx.Rngs(0), bn_size=2)
    models.load_torch_state_dict(model, tnet.state_dict())  # strict: every name matches torchvision's
    assert "features.denseblock2.denselayer3.conv2.weight" in tnet.state_dict()
    assert "features.denseblock2.denselayer3.conv2.kernel" in models.param_paths(model)
    model.eval()
    np.testing.assert_allclose(_forward(model, jnp.asarray(x, jnp.float32)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.integration
def test_inception_v3_takes_a_torchvision_state_dict_and_matches_it_at_75_pixels(torch):
    from tests.models.torchvision_twins import inception_v3

    tnet = inception_v3(torch, num_classes=6, transform_input=True)
    with torch.no_grad():
        _randomise_batchnorm(torch, tnet)
    tnet.eval()
    x = np.random.default_rng(3).normal(size=(2, 75, 83, 3))
    with torch.no_grad():
        expected = tnet(torch.tensor(ref.channels_first(x))).numpy()
    model = models.create("inception_v3", num_classes=6, transform_input=True)
    models.load_torch_state_dict(model, tnet.state_dict())
    model.eval()
    np.testing.assert_allclose(_forward(model, jnp.asarray(x, jnp.float32)), expected, rtol=1e-3, atol=1e-3)
