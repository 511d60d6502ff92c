"""models.from_torch ports PyTorch CNNs, forward pass and weights: the lectures' SimpleCNN, LargeNet and myCNN
as their text writes them, and models using the other supported layers, functions and methods, give
PyTorch's outputs. Skipped cleanly without torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models


def _lecture_models(torch):
    nn, F = torch.nn, torch.nn.functional

    class SimpleCNN(nn.Module):  # lecture 1, as written there
        def __init__(self):
            super(SimpleCNN, self).__init__()
            self.conv1 = nn.Conv2d(in_channels=1, out_channels=6, kernel_size=3, stride=1, padding=1)
            self.conv2 = nn.Conv2d(in_channels=6, out_channels=16, kernel_size=3, stride=1, padding=1)
            self.fc1 = nn.Linear(16 * 7 * 7, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.max_pool2d(x, 2)
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = x.view(-1, 16 * 7 * 7)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    class myCNN(nn.Module):  # lecture 2 (its "Return out" typo mended)
        def __init__(self):
            super(myCNN, self).__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 12, 5)
            self.fc1 = nn.Linear(12 * 4 * 4, 120)

        def forward(self, x):
            out = F.relu(self.conv1(x))
            out = F.max_pool2d(out, 2)
            out = F.relu(self.conv2(out))
            out = F.max_pool2d(out, 2)
            out = out.view(out.size(0), -1)
            out = F.relu(self.fc1(out))
            return out

    class LargeNet(nn.Module):  # lecture 5
        def __init__(self):
            super(LargeNet, self).__init__()
            self.name = "large"
            self.conv1 = nn.Conv2d(3, 5, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(5, 10, 5)
            self.fc1 = nn.Linear(10 * 5 * 5, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = x.view(-1, 10 * 5 * 5)
            x = F.relu(self.fc1(x))
            x = self.fc2(x)
            return x

    return {"SimpleCNN": (SimpleCNN, (1, 28, 28)), "myCNN": (myCNN, (1, 28, 28)), "LargeNet": (LargeNet, (3, 32, 32))}


def _compare(torch, net, x, port, rtol=1e-5, atol=1e-5):
    with torch.no_grad():
        expected = net(torch.tensor(x)).numpy()
    got = nnx.jit(lambda m, v: m(v))(port, jnp.asarray(np.moveaxis(x, 1, -1), jnp.float32))
    got = np.moveaxis(np.asarray(got), -1, 1) if got.ndim >= 3 else np.asarray(got)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["SimpleCNN", "myCNN", "LargeNet"])
def test_the_lectures_models_port_exactly(torch, name):
    cls, shape = _lecture_models(torch)[name]
    torch.manual_seed(0)
    net = cls().eval()
    x = np.random.default_rng(0).normal(size=(3,) + shape)
    port = models.from_torch(net, torch.tensor(x))  # checked against torch on the example, too
    assert port.source == name
    _compare(torch, net, x, port)
    # the Linear after the flatten keeps PyTorch's weights; the port reorders the features instead
    np.testing.assert_array_equal(port.layers["fc1"].kernel[...], net.fc1.weight.detach().numpy().T.astype(np.float32))
    assert "fc1.kernel" in models.param_paths(port)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_sequential_batch_norm_dropout_concat_and_pools_in_both_modes(torch):
    tnn, F = torch.nn, torch.nn.functional

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), tnn.BatchNorm2d(8),
                                           tnn.LeakyReLU(0.2), tnn.MaxPool2d(2, ceil_mode=True))
            self.branch = tnn.Conv2d(8, 4, 1, bias=False)
            self.up = tnn.ConvTranspose2d(12, 6, 2, stride=2)
            self.head = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(6, 5))

        def forward(self, x):
            f = self.features(x)
            f = torch.cat([f, torch.sigmoid(self.branch(f))], dim=1)
            f = F.avg_pool2d(self.up(f), 3, 1, 1, count_include_pad=False)
            return F.log_softmax(self.head(f), dim=1) + f.mean(dim=(2, 3)).mean(dim=1, keepdim=True)

    torch.manual_seed(1)
    net = Net()
    with torch.no_grad():
        net.features[1].running_mean.uniform_(-0.5, 0.5)
        net.features[1].running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(1).normal(size=(2, 3, 11, 13))
    net.eval()
    port = models.from_torch(net, torch.tensor(x))
    _compare(torch, net, x, port)
    # training mode: batch statistics, and the running ones move as PyTorch's do (dropout off to compare)
    net.train()
    net.head[2].p = 0.0
    port = models.from_torch(net)
    _compare(torch, net, x, port, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(port.layers["features"]["1"].mean[...], net.features[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(port.layers["features"]["1"].var[...], net.features[1].running_var.numpy(), rtol=1e-5, atol=1e-6)
    grads = nnx.grad(lambda m: m(jnp.ones((2, 11, 13, 3))).sum())(port)
    assert jax.tree.leaves(grads)


def test_conv1d_models_port_too(torch):
    tnn = torch.nn
    torch.manual_seed(2)
    net = tnn.Sequential(tnn.Conv1d(1, 4, 3, stride=2), tnn.ReLU(), tnn.Conv1d(4, 4, 3, dilation=2), tnn.BatchNorm1d(4),
                         tnn.Flatten(), tnn.Linear(4 * 15, 3)).eval()
    x = np.random.default_rng(2).normal(size=(2, 1, 40))
    _compare(torch, net, x, models.from_torch(net, torch.tensor(x)))


def test_upsample_layers_port_with_their_mode(torch):
    tnn = torch.nn
    torch.manual_seed(3)
    net = tnn.Sequential(tnn.Conv2d(2, 4, 3), tnn.Upsample(scale_factor=1.5, mode="bilinear"), tnn.ReLU(),
                         tnn.Upsample(size=(9, 10), mode="nearest-exact"), tnn.Conv2d(4, 1, 1))
    x = np.random.default_rng(3).normal(size=(2, 2, 8, 7))
    _compare(torch, net.eval(), x, models.from_torch(net, torch.tensor(x)))


def test_what_it_cannot_convert_is_named(torch):
    tnn = torch.nn

    class Up(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.up = tnn.Conv2d(1, 2, 3), tnn.LPPool2d(2, 2)

        def forward(self, x):
            return self.up(self.conv(x))

    with pytest.raises(ValueError, match=r"from_torch\(Up\): layer 'up' \(LPPool2d\(.*\)\) has no cnnjax conversion"):
        models.from_torch(Up())

    class Abs(tnn.Module):
        def forward(self, x):
            return torch.abs(x)

    with pytest.raises(ValueError, match=r"from_torch\(Abs\): function 'abs' \(node 'abs_1'\) has no cnnjax conversion"):
        models.from_torch(Abs())

    class Branchy(tnn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match=r"from_torch\(Branchy\): torch.fx cannot trace its forward"):
        models.from_torch(Branchy())
    with pytest.raises(TypeError, match="from_torch: module must be a torch.nn.Module, got str"):
        models.from_torch("net")
