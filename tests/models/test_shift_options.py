"""downsample="blur"/"aps" on the zoo, and P4CNN: counts unchanged, exact invariance where theory says so."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import functional as F
from cnnjax import models
from cnnjax.equivariance import assert_invariant, consistency, group_action, invariance_error, shift
from tests.models.test_zoo import PARAM_COUNTS, abstract, n_params


@pytest.mark.parametrize("name", ["mnist1d_cnn", "mnist1d_convbase", "resnet20", "resnet18", "resnet50", "vgg11"])
@pytest.mark.parametrize("downsample", ["max", "avg", "blur", "aps"])
def test_downsample_options_keep_parameter_counts_and_shapes(name, downsample):
    model = abstract(name, downsample=downsample)
    assert n_params(model) == PARAM_COUNTS[name]
    shape = {"mnist1d_cnn": (2, 40, 1), "mnist1d_convbase": (2, 40, 1), "vgg11": (1, 64, 64, 3)}.get(name, (2, 32, 32, 3))
    ref = nnx.eval_shape(lambda m, x: m(x, return_features=True), abstract(name), jax.ShapeDtypeStruct(shape, jnp.float32))
    out = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert jax.tree.map(lambda a: a.shape, out) == jax.tree.map(lambda a: a.shape, ref)


def test_global_head_and_option_errors():
    assert n_params(models.create("mnist1d_cnn", head="global")) == (3 * 15 + 15) + 2 * (3 * 15 * 15 + 15) + (15 * 10 + 10)
    # "same" padding: 40 -> 20 -> 10 -> 5 positions before the flattening head.
    assert n_params(models.create("mnist1d_cnn", padding="same")) == 2_050 - 60 * 10 + 75 * 10
    with pytest.raises(ValueError, match=r"PlainConvNet: downsample must be one of \('stride', 'max', 'avg', 'blur', 'aps'\), got downsample='min'"):
        models.create("mnist1d_cnn", downsample="min")
    with pytest.raises(ValueError, match=r"PlainConvNet: padding must be one of \('published', 'same'\)"):
        models.create("mnist1d_cnn", padding="valid")
    with pytest.raises(ValueError, match=r"PlainConvNet: head must be one of \('flatten', 'global'\)"):
        models.create("mnist1d_cnn", head="mean")
    with pytest.raises(ValueError, match=r"ResNet: blur_size must be an int from 1 to 7, got blur_size=8"):
        models.create("resnet20", downsample="blur", blur_size=8)


def _circular_aps(name, **kw):
    return models.create(name, padding_mode="circular", downsample="aps", **kw)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
@pytest.mark.parametrize("name,shape", [("resnet20", (4, 16, 16, 3)), ("mnist1d_cnn", (8, 40, 1))])
def test_circular_aps_networks_are_exactly_shift_invariant(rng, name, shape):
    one_d = {"head": "global", "padding": "same"} if name.startswith("mnist1d") else {}
    model = _circular_aps(name, **one_d)
    model.eval()
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    n = len(shape) - 2
    shifts = rng.integers(-7, 8, size=(6, n))
    assert_invariant(model, x, shift(shifts, spatial_dims=n), rtol=1e-5)
    assert float(consistency(model, x, max_shift=7, key=jax.random.key(0), spatial_dims=n)) == 1.0
    # The same network with strided subsampling is not.
    strided = models.create(name, padding_mode="circular", **one_d)
    strided.eval()
    assert float(invariance_error(strided, x, shift(shifts, spatial_dims=n)).max()) > 1e-3


@pytest.mark.integration  # trains end to end
def test_aps_network_stays_consistent_after_training():
    from cnnjax.train import TrainConfig, fit

    cfg = TrainConfig(model="mnist1d_cnn", steps=60, eval_every=1000,
                      model_options={"padding": "same", "padding_mode": "circular", "downsample": "aps", "head": "global"})
    result = fit(cfg, progress=False)
    model = result.model
    model.eval()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 40, 1)), jnp.float32)
    assert float(consistency(model, x, max_shift=8, key=jax.random.key(1), spatial_dims=1)) == 1.0
    assert float(invariance_error(model, x, shift([1, 3, 5], spatial_dims=1)).max()) < 1e-5


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_blur_improves_shift_consistency_over_strides_at_init(rng):
    x = jnp.asarray(rng.normal(size=(256, 40, 1)), jnp.float32)
    key = jax.random.key(0)

    def score(**kw):
        vals = []
        for seed in range(3):
            m = models.create("mnist1d_cnn", head="global", padding="same", padding_mode="circular", seed=seed, **kw)
            vals.append(float(consistency(m, x, max_shift=4, key=key, spatial_dims=1)))
        return np.mean(vals)

    assert score(downsample="blur", blur_size=5) > score(downsample="stride")


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_p4cnn_logits_are_invariant_under_the_group(rng, group):
    model = models.create("p4cnn", group=group, depth=3, padding=1)
    model.eval()
    x = jnp.asarray(rng.normal(size=(3, 10, 10, 1)), jnp.float32)
    assert_invariant(model, x, group_action(group), rtol=1e-5)
    # A plain CNN of the same shape is not.
    plain = models.create("simple_cnn", in_channels=1)
    x28 = jnp.asarray(rng.normal(size=(3, 28, 28, 1)), jnp.float32)
    assert float(invariance_error(plain, x28, group_action(group)).max()) > 1e-2


def test_p4cnn_default_shape_and_square_input_check():
    assert n_params(abstract("p4cnn", group="p4m")) == 43_540
    out = nnx.eval_shape(lambda m, x: m(x), abstract("p4cnn"), jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
    assert out.shape == (2, 10)
    with pytest.raises(ValueError, match=r"P4CNN: input must be square"):
        models.create("p4cnn", depth=2, padding=1)(jnp.ones((1, 8, 10, 1)))


def test_nn_layers_wrap_the_functional_ops(rng):
    from cnnjax import nn

    x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32)
    np.testing.assert_array_equal(nn.BlurPool(5, (2, 2))(x), F.blur_pool(x, 5, (2, 2)))
    y, phase = nn.APSPool((2, 2))(x, return_phase=True)
    np.testing.assert_array_equal(y, F.aps_pool(x, (2, 2), phase=phase))
    lift = nn.LiftingConv(4, 3, 3, padding=1, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(lift(x), F.lifting_conv(x, lift.kernel[...], lift.bias[...], padding=1), rtol=1e-6)
    g = nn.GroupConv(3, 2, 3, group="p4", rngs=nnx.Rngs(0))
    assert g.kernel.shape == (3, 3, 3, 4, 2) and g(lift(x)).shape == (2, 6, 6, 8)
    # He-normal over the true fan-in (k*k*C_in*|G| = 108): std about sqrt(2/108).
    assert abs(float(jnp.std(nn.GroupConv(16, 16, 3, rngs=nnx.Rngs(0)).kernel[...])) - np.sqrt(2 / 576)) < 0.01
    bn = nn.GroupBatchNorm(3, group="p4")
    out = bn(lift(x))
    assert bn.mean.shape == (3,) and out.shape == (2, 8, 8, 12)
    assert nn.GroupPool("p4")(out).shape == (2, 8, 8, 3)


def test_z2cnn_matches_p4cnn_in_size_but_not_in_rotation_invariance():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    z2, p4 = (models.create(n, padding=1, seed=0) for n in ("z2cnn", "p4cnn"))
    z2.eval(), p4.eval()
    assert abs(n_params(z2) - n_params(p4)) / n_params(p4) < 0.02
    assert float(invariance_error(p4, x, group_action("p4")).max()) < 1e-5
    assert float(invariance_error(z2, x, group_action("p4")).max()) > 1e-2


def test_digits_cnn_aps_circular_global_is_exactly_shift_invariant():
    model = models.create("digits_cnn", padding_mode="circular", downsample="aps", head="global")
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    assert_invariant(model, x, shift([[1, 0], [0, 3], [5, 7]], spatial_dims=2))
