"""cnnjax.nn: each module is its functional op plus parameters; train/eval; split/merge; ensembles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cnnjax.functional as F
from cnnjax import nn


def test_conv_is_the_functional_op_with_its_params(rng):
    layer = nn.Conv(4, 6, (3, 2), stride=(2, 1), padding="SAME", padding_mode="circular", groups=2, rngs=nnx.Rngs(0))
    x = rng.normal(size=(2, 9, 8, 4)).astype(np.float32)
    assert layer.kernel.shape == (3, 2, 2, 6) and layer.bias.shape == (6,)
    expected = F.conv(x, layer.kernel[...], layer.bias[...], stride=(2, 1), padding="SAME", padding_mode="circular", groups=2)
    np.testing.assert_array_equal(layer(x), expected)


def test_conv_transpose_is_the_functional_op(rng):
    layer = nn.ConvTranspose(4, 6, (3, 3), stride=2, padding=1, output_padding=1, groups=2, rngs=nnx.Rngs(0))
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    assert layer.kernel.shape == (3, 3, 4, 3)
    expected = F.conv_transpose(x, layer.kernel[...], layer.bias[...], stride=2, padding=1, output_padding=1, groups=2)
    np.testing.assert_array_equal(layer(x), expected)
    assert layer(x).shape == (2, 10, 10, 6)


def test_default_init_is_he_normal_and_bias_zero():
    layer = nn.Conv(64, 256, (3, 3), rngs=nnx.Rngs(0))
    fan_in = 3 * 3 * 64
    assert float(jnp.std(layer.kernel[...])) == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
    np.testing.assert_array_equal(layer.bias[...], 0)
    layer = nn.Conv(3, 8, 3, spatial_dims=1, kernel_init=jax.nn.initializers.ones, use_bias=False, rngs=nnx.Rngs(0))
    assert layer.kernel.shape == (3, 3, 8) and layer.bias is None
    np.testing.assert_array_equal(layer.kernel[...], 1)


def test_bare_int_kernel_needs_a_rank():
    with pytest.raises(ValueError, match=r"Conv: cannot tell the number of spatial dims"):
        nn.Conv(3, 8, 3, rngs=nnx.Rngs(0))
    assert nn.Conv(3, 8, 3, stride=(1, 1), rngs=nnx.Rngs(0)).kernel.shape == (3, 3, 3, 8)
    with pytest.raises(ValueError, match=r"Conv: groups=2 must divide in_channels=3"):
        nn.Conv(3, 8, (3, 3), groups=2, rngs=nnx.Rngs(0))


def test_mixed_precision_compute_dtype(rng):
    layer = nn.Conv(4, 8, (3, 3), dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = layer(rng.normal(size=(2, 6, 6, 4)).astype(np.float32))
    assert y.dtype == jnp.bfloat16 and layer.kernel.dtype == jnp.float32
    bn = nn.BatchNorm(8, dtype=jnp.bfloat16)
    assert bn(y).dtype == jnp.bfloat16 and bn.mean.dtype == jnp.float32


def test_pool_norm_upsample_modules_wrap_the_functional_ops(rng):
    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(nn.MaxPool((2, 2))(x), F.max_pool(x, (2, 2)))
    np.testing.assert_array_equal(nn.AvgPool((3, 3), 1, 1)(x), F.avg_pool(x, (3, 3), 1, 1))
    np.testing.assert_array_equal(nn.AdaptiveAvgPool((3, 3))(x), F.adaptive_avg_pool(x, (3, 3)))
    np.testing.assert_array_equal(nn.GlobalAvgPool(spatial_dims=2)(x), F.global_avg_pool(x, spatial_dims=2))
    np.testing.assert_array_equal(nn.GroupNorm(2, 4, spatial_dims=2)(x), F.group_norm(x, 2, jnp.ones(4), jnp.zeros(4), spatial_dims=2))
    np.testing.assert_array_equal(nn.InstanceNorm(4, spatial_dims=2)(x), F.instance_norm(x, jnp.ones(4), jnp.zeros(4), spatial_dims=2))
    np.testing.assert_array_equal(nn.LayerNorm(4)(x), F.layer_norm(x, jnp.ones(4), jnp.zeros(4)))
    np.testing.assert_array_equal(nn.LocalResponseNorm(3)(x), F.local_response_norm(x, 3))
    np.testing.assert_array_equal(nn.Upsample((2, 2))(x), F.upsample_nearest(x, (2, 2)))
    np.testing.assert_array_equal(nn.Upsample((2, 3), method="bilinear")(x), F.resize(x, (16, 24), "bilinear"))
    np.testing.assert_array_equal(nn.PixelShuffle((2, 2))(x), F.pixel_shuffle(x, (2, 2)))
    assert nn.Flatten(3)(x).shape == (2, 256)


def _net(seed=0):
    rngs = nnx.Rngs(seed)
    return nnx.Sequential(
        nn.Conv(3, 8, (3, 3), padding=1, rngs=rngs), nn.BatchNorm(8), jax.nn.relu,
        nn.Dropout(0.5, rngs=rngs), nn.GlobalAvgPool(spatial_dims=2), nnx.Linear(8, 4, rngs=rngs),
    )


def test_train_and_eval_switch_batchnorm_and_dropout(rng):
    model = _net()
    x = jnp.asarray(rng.normal(size=(6, 5, 5, 3)), jnp.float32)
    model.train()
    model(x)
    mean_after = model.layers[1].mean[...]
    assert not np.allclose(mean_after, 0)  # running statistics moved
    assert not np.array_equal(model(x), model(x))  # dropout draws fresh masks
    model.eval()
    before = model.layers[1].mean[...]
    y1, y2 = model(x), model(x)
    np.testing.assert_array_equal(y1, y2)  # deterministic
    np.testing.assert_array_equal(model.layers[1].mean[...], before)  # statistics frozen


def test_split_merge_runs_as_a_pure_function_under_jit_and_grad(rng):
    model = _net()
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(rng.normal(size=(4, 5, 5, 3)), jnp.float32)

    def loss(p, r, x):
        return jnp.mean(nnx.merge(graphdef, p, r)(x) ** 2)

    grads = jax.jit(jax.grad(loss))(params, rest, x)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert float(jnp.abs(grads["layers"][0]["kernel"][...]).max()) > 0
    np.testing.assert_allclose(jax.jit(loss)(params, rest, x), loss(params, rest, x), rtol=1e-6)


def test_ensemble_by_vmap_keeps_batchnorm_state_per_member(rng):
    """Members built from different seeds, trained-mode forward on different data under jax.vmap:
    each member's running statistics must be its own, exactly as if run alone."""
    seeds = jnp.arange(3)
    graphdef, _ = nnx.split(_net(0))

    def init(seed):
        return nnx.split(_net(seed))[1]

    states = jax.vmap(init)(jax.vmap(jax.random.key)(seeds))  # nnx.Rngs(key) == nnx.Rngs(int seed)
    x = jnp.asarray(rng.normal(size=(3, 6, 5, 5, 3)), jnp.float32) * jnp.array([1.0, 2.0, 3.0])[:, None, None, None, None]

    def step(state, xb):
        model = nnx.merge(graphdef, state)
        model.eval()
        model.layers[1].use_running_average = False  # batch-norm in training mode, dropout off
        y = model(xb)
        return y, nnx.state(model)

    ys, new_states = jax.jit(jax.vmap(step))(states, x)
    means = new_states["layers"][1]["mean"][...]
    assert means.shape == (3, 8)
    assert not np.allclose(means[0], means[1]) and not np.allclose(means[1], means[2])
    for m in range(3):
        alone = _net(int(seeds[m]))
        alone.eval()
        alone.layers[1].use_running_average = False
        np.testing.assert_allclose(alone(x[m]), ys[m], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(alone.layers[1].mean[...], means[m], rtol=1e-5, atol=1e-6)


def test_dropout_module_needs_rngs_in_training():
    with pytest.raises(ValueError, match=r"Dropout: in training mode it needs rngs"):
        nn.Dropout(0.5)(jnp.ones(3))
    np.testing.assert_array_equal(nn.Dropout(0.5, deterministic=True)(jnp.ones(3)), jnp.ones(3))


@pytest.mark.parametrize("kind,axes", [("batch", (0, 1, 2)), ("layer", (1, 2, 3)), ("instance", (1, 2)), ("group", None)])
def test_norm_layer_normalizes_over_the_axes_its_name_says(kind, axes, rng):
    x = rng.normal(3.0, 2.0, size=(4, 5, 5, 16)).astype(np.float32)
    y = np.asarray(nn.norm_layer(kind, 16, spatial_dims=2)(jnp.asarray(x)))
    if kind == "group":  # 8 groups of 2 channels, per example
        y, axes = y.reshape(4, 5, 5, 8, 2), (1, 2, 4)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=axes), 1, atol=1e-3)


def test_norm_layer_none_is_the_identity_and_bad_kinds_are_named():
    x = jnp.arange(6.0).reshape(1, 6, 1)
    assert nn.norm_layer("none", 1, spatial_dims=1)(x) is x
    with pytest.raises(ValueError, match=r"norm_layer: kind must be one of \('batch', 'group', 'layer', 'instance', 'none'\), got kind='weight'"):
        nn.norm_layer("weight", 4, spatial_dims=2)


@pytest.mark.parametrize("kind", ["batch", "group", "none"])
def test_norm_relu_is_relu_of_norm_plus_residual(kind, rng):
    """BatchNorm fuses the add and ReLU into its op (oneDNN's on the CPU); other layers run them after."""
    x = jnp.asarray(rng.normal(size=(4, 5, 5, 8)), jnp.float32)
    r = jnp.asarray(rng.normal(size=(4, 5, 5, 8)), jnp.float32)
    a, b = nn.norm_layer(kind, 8, spatial_dims=2), nn.norm_layer(kind, 8, spatial_dims=2)
    for residual in (None, r):
        fused = nn.norm_relu(a, x, residual=residual)
        plain = b(x)
        np.testing.assert_allclose(fused, jax.nn.relu(plain if residual is None else plain + r), rtol=1e-5, atol=1e-5)
    if kind == "batch":  # the fused call updates the running statistics as the plain one does
        np.testing.assert_allclose(a.mean[...], b.mean[...], rtol=1e-6, atol=1e-7)


def test_group_batch_norm_takes_residual_and_relu(rng):
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 12)), jnp.float32)
    bn = nn.GroupBatchNorm(3, group="p4")
    y = bn(x, residual=-x, relu=True)
    expect = jax.nn.relu(nn.GroupBatchNorm(3, group="p4")(x) - x)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=1.5, mode="bilinear"),
    dict(scale_factor=0.5, mode="bicubic", antialias=True),
    dict(scale_factor=(0.4, 0.7), mode="nearest-exact"),
    dict(size=(5, 7), mode="area"),
    dict(scale_factor=2.5, mode="bilinear", align_corners=True, recompute_scale_factor=True),
])
def test_upsample_takes_torch_nn_upsample_arguments(torch, rng, kwargs):
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.tensor(x.transpose(0, 3, 1, 2)), **kwargs).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(nn.Upsample(**kwargs)(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "exactly one of scale, size and scale_factor"),
    (dict(scale=2, size=(4, 4)), "exactly one of scale, size and scale_factor"),
    (dict(scale_factor=2.0, mode="nearest", antialias=True), "Upsample: antialias=True only applies"),
    (dict(scale_factor=2.0, mode="box"), "Upsample: unknown method 'box'"),
    (dict(size=(4, 4), mode="area", align_corners=True), "Upsample: align_corners=True only applies"),
    (dict(scale_factor=-2.0), "Upsample: every entry of scale_factor must be a positive"),
])
def test_upsample_validates_its_configuration_when_built(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nn.Upsample(**kwargs)


def test_dropout_under_plain_jax_jit_says_what_to_do_instead():
    drop = nn.Dropout(0.5, rngs=nnx.Rngs(0))
    with pytest.raises(Exception, match=r"Dropout: in training mode .* Use nnx.jit .* model.eval\(\)"):
        jax.jit(lambda x: drop(x))(jnp.ones(4))
    assert nnx.jit(lambda m, x: m(x))(drop, jnp.ones(4)).shape == (4,)
    drop.eval()
    np.testing.assert_array_equal(jax.jit(lambda x: drop(x))(jnp.ones(4)), jnp.ones(4))
