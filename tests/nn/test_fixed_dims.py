"""nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, ...: PyTorch's spellings and positional order, equal to the N-d
layers they fix the rank of, to PyTorch's layers where torch is installed, with rngs optional."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models, nn
from tests.functional import reference as ref


def test_the_lectures_simple_cnn_builds_as_written():
    model = nnx.Sequential(nn.Conv2d(1, 6, 3, padding=1), jax.nn.relu, nn.MaxPool2d(2, 2),
                           nn.Conv2d(6, 16, 3, padding=1), jax.nn.relu, nn.MaxPool2d(2, 2),
                           nn.Flatten(), nn.Linear(7 * 7 * 16, 120), jax.nn.relu, nn.Linear(120, 10))
    out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((8, 28, 28, 1), jnp.float32))
    assert out.shape == (8, 10)
    assert nn.Conv2d(1, 6, 5).kernel.shape == (5, 5, 1, 6)
    assert nn.MaxPool2d(2)(jnp.ones((1, 28, 28, 6))).shape == (1, 14, 14, 6)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_each_is_its_n_d_layer_with_the_rank_fixed(n):
    x = jnp.asarray(np.random.default_rng(n).normal(size=(2,) + (6,) * n + (3,)), jnp.float32)
    t = lambda v: (v,) * n  # noqa: E731
    conv, generic = getattr(nn, f"Conv{n}d")(3, 4, 3, 2, 1, rngs=nnx.Rngs(0)), nn.Conv(3, 4, t(3), stride=2, padding=1, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(conv(x), generic(x))
    up = getattr(nn, f"ConvTranspose{n}d")(3, 2, 2, 2, rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(up(x), nn.ConvTranspose(3, 2, t(2), stride=2, rngs=nnx.Rngs(1))(x))
    np.testing.assert_array_equal(getattr(nn, f"MaxPool{n}d")(3, 2, 1)(x), nn.MaxPool(t(3), t(2), t(1))(x))
    np.testing.assert_array_equal(getattr(nn, f"AvgPool{n}d")(2)(x), nn.AvgPool(t(2))(x))
    np.testing.assert_array_equal(getattr(nn, f"AdaptiveAvgPool{n}d")(4)(x), nn.AdaptiveAvgPool(t(4))(x))
    np.testing.assert_array_equal(getattr(nn, f"BatchNorm{n}d")(3)(x), nn.BatchNorm(3)(x))


def test_rngs_is_optional_and_manual_seed_restarts_the_stream():
    nn.manual_seed(7)
    a, b = nn.Conv2d(1, 6, 5), nn.Conv2d(1, 6, 5)
    assert not np.array_equal(a.kernel[...], b.kernel[...])  # each layer its own draw, as in PyTorch
    nn.manual_seed(7)
    np.testing.assert_array_equal(nn.Conv2d(1, 6, 5).kernel[...], a.kernel[...])
    abstract = nnx.eval_shape(lambda: nn.Linear(3, 4))  # the stream stays concrete under a trace
    assert abstract.kernel.shape == (3, 4) and nn.Linear(3, 4).kernel.shape == (3, 4)
    with pytest.raises(TypeError, match="manual_seed: seed must be an int, got str '1'"):
        nn.manual_seed("1")


def test_bad_inputs_and_options_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d: x must be \(\*batch, H, W, C\), channels last, got shape \(28, 1\)"):
        nn.Conv2d(1, 6, 5)(jnp.ones((28, 1)))
    with pytest.raises(ValueError, match=r"BatchNorm2d: momentum must be in \[0, 1\] \(PyTorch's"):
        nn.BatchNorm2d(4, momentum=1.5)
    with pytest.raises(ValueError, match="BatchNorm2d: track_running_stats=False is not supported"):
        nn.BatchNorm2d(4, track_running_stats=False)
    assert nn.BatchNorm1d(5)(jnp.ones((4, 5))).shape == (4, 5)  # (N, C), as PyTorch's BatchNorm1d takes


def test_they_equal_torch_layers_and_load_their_state_dict(torch):
    tnn = torch.nn
    torch.manual_seed(0)
    tnet = tnn.Sequential(tnn.Conv2d(3, 8, 3, 2, 1), tnn.BatchNorm2d(8, momentum=0.3), tnn.ReLU(), tnn.MaxPool2d(2, 2),
                          tnn.AvgPool2d(3, 1, 1, count_include_pad=False), tnn.ConvTranspose2d(8, 4, 2, 2),
                          tnn.AdaptiveAvgPool2d(3))
    ours = nnx.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8, momentum=0.3), jax.nn.relu, nn.MaxPool2d(2, 2),
                          nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.ConvTranspose2d(8, 4, 2, 2),
                          nn.AdaptiveAvgPool2d(3))
    models.load_torch_state_dict(ours, tnet.state_dict())  # nnx.Sequential's "layers" level is torch's indices
    x = np.random.default_rng(0).normal(size=(2, 20, 18, 3))
    xt = torch.tensor(ref.channels_first(x))
    with torch.no_grad():
        train_out = tnet(xt).numpy()  # training mode: batch statistics, and the running ones move by momentum 0.3
    np.testing.assert_allclose(ours(jnp.asarray(x, jnp.float32)), ref.channels_last(train_out), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.layers[1].mean[...], tnet[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.layers[1].var[...], tnet[1].running_var.numpy(), rtol=1e-5, atol=1e-6)  # unbiased
    tnet.eval(), ours.eval()
    with torch.no_grad():
        eval_out = tnet(xt).numpy()
    np.testing.assert_allclose(ours(jnp.asarray(x, jnp.float32)), ref.channels_last(eval_out), rtol=1e-4, atol=1e-4)
