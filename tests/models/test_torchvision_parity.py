"""Every zoo model that torchvision also has: the same parameter count, and after load_torch_state_dict the
same eval-mode logits at torchvision's default input size and at a smaller one, with randomised BatchNorm
statistics (and ConvNeXt's layer scales, which start at 1e-6). Needs torchvision, which CI does not install:
skipped there, run wherever it is importable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models

pytestmark = pytest.mark.integration

NAMES = [n for n in models.list_models() if n not in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")]
SIZES = {"inception_v3": (299, 75)}
_forward = nnx.jit(lambda m, x: m(x))


def _torchvision():
    tv = pytest.importorskip("torchvision", reason="torchvision is not installed")
    return tv


def _randomise(torch, net):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g) * 0.2 + 1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for name, p in net.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_model_loads_and_gives_the_same_logits(torch, name):
    tv = _torchvision()
    if not hasattr(tv.models, name):
        pytest.skip(f"torchvision has no {name}")
    torch.set_default_dtype(torch.float32)
    extra = {"aux_logits": True, "init_weights": True} if name in ("inception_v3", "googlenet") else {}
    torch.manual_seed(0)
    full = getattr(tv.models, name)(**extra)
    ours = nnx.eval_shape(lambda: models.create(name))
    assert sum(p.numel() for p in full.parameters()) == sum(x.size for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    tnet = getattr(tv.models, name)(num_classes=10, **extra)
    _randomise(torch, tnet)
    tnet.eval()
    model = models.create(name, num_classes=10)
    models.load_torch_state_dict(model, tnet.state_dict())
    model.eval()
    for size in SIZES.get(name, (224, 64)):
        x = np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            want = tnet(torch.tensor(x)).numpy()
        got = np.asarray(_forward(model, jnp.asarray(x.transpose(0, 2, 3, 1))))
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (name, size)
