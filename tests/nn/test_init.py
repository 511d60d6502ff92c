"""cnnjax.nn.init gives jax.nn.initializers' values bit for bit, and builds a network with few compiles."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import functional as F
from cnnjax import models, nn
from cnnjax.nn import init

# 1-D, 2-D, 3-D kernels and dense matrices; sizes below, at and across chunk boundaries (65536)
SHAPES = [(3, 1, 15), (1, 1, 256, 16), (3, 3, 64, 64), (3, 3, 3, 4, 8), (100, 10), (1, 4096), (3, 3, 128, 17), (256, 256), (3, 3, 128, 128)]


@pytest.mark.parametrize("shape", SHAPES)
def test_truncated_normal_equals_jax_bit_for_bit(shape):
    key = jax.random.key(7)
    np.testing.assert_array_equal(init.he_normal()(key, shape), jax.nn.initializers.he_normal()(key, shape))
    if len(shape) == 2:
        np.testing.assert_array_equal(init.lecun_normal()(key, shape), jax.nn.initializers.lecun_normal()(key, shape))


def test_raw_uint32_keys_and_float64_equal_jax_too():
    key = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(init.he_normal()(key, (3, 3, 8, 8)), jax.nn.initializers.he_normal()(key, (3, 3, 8, 8)))
    with jax.enable_x64(True):
        got = init.he_normal()(jax.random.key(1), (3, 3, 8, 8), jnp.float64)
        assert got.dtype == jnp.float64
        np.testing.assert_array_equal(got, jax.nn.initializers.he_normal()(jax.random.key(1), (3, 3, 8, 8), jnp.float64))


def test_inside_a_trace_and_in_half_precision_it_is_jax_s_initializer():
    key = jax.random.key(0)
    got = jax.jit(lambda k: init.he_normal()(k, (3, 3, 4, 4)))(key)
    np.testing.assert_array_equal(got, jax.nn.initializers.he_normal()(key, (3, 3, 4, 4)))
    half = init.he_normal()(key, (3, 3, 4, 4), jnp.bfloat16)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_array_equal(half, jax.nn.initializers.he_normal()(key, (3, 3, 4, 4), jnp.bfloat16))
    assert jax.eval_shape(lambda k: init.zeros(k, (5,)), key).shape == (5,)


def test_a_draw_of_several_chunks_inside_jit_is_jax_s_too():
    # the chunk program over many offsets at once: it once failed to lower inside jit (nnx.jit of a model build)
    key = jax.random.key(3)
    got = jax.jit(lambda k: init.he_normal()(k, (512, 1024)))(key)
    np.testing.assert_array_equal(got, jax.nn.initializers.he_normal()(key, (512, 1024)))
    built = nnx.jit(lambda: nn.Linear(1024, 1024, rngs=nnx.Rngs(0)))()
    np.testing.assert_array_equal(built.kernel[...], nn.Linear(1024, 1024, rngs=nnx.Rngs(0)).kernel[...])


def test_constants():
    np.testing.assert_array_equal(init.ones(None, (2, 3)), np.ones((2, 3), np.float32))
    assert init.zeros(None, (4,)).dtype == jnp.float32


@pytest.mark.parametrize("n", [1, 1000, init.CHUNK - 1, init.CHUNK, init.CHUNK + 1, 3 * init.CHUNK + 5])
@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("threads", ["one", "several"])
def test_a_chunked_draw_is_jax_s_truncated_normal_bit_for_bit(n, seed, threads, monkeypatch):
    if threads == "several":  # chunks spread over a thread pool (as VGG's large layers are), same values
        monkeypatch.setattr(init, "PARALLEL_CHUNKS", 1)
        monkeypatch.setattr(init.os, "cpu_count", lambda: 4)
    key = jax.random.key(seed)
    want = jax.random.truncated_normal(key, -2, 2, (n,), jnp.float32)
    np.testing.assert_array_equal(init._draw(key, n, np.float32(1)), want)


def test_a_chunked_float64_draw_and_a_raw_key_equal_jax_too():
    with jax.enable_x64(True):
        key = jax.random.key(5)
        want = jax.random.truncated_normal(key, -2, 2, (init.CHUNK + 7,), jnp.float64)
        np.testing.assert_array_equal(init._draw(key, init.CHUNK + 7, np.float64(1)), want)
    raw = jax.random.PRNGKey(9)
    np.testing.assert_array_equal(init._draw(raw, 50, np.float32(1)),
                                  jax.random.truncated_normal(raw, -2, 2, (50,), jnp.float32))


def test_keys_of_another_prng_take_jax_s_path():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(init.he_normal()(key, (3, 3, 4, 4)), jax.nn.initializers.he_normal()(key, (3, 3, 4, 4)))


def test_a_zoo_model_and_a_conv_bn_stack_have_the_parameters_jax_s_initializers_give(monkeypatch):
    def build():
        stack = nnx.Sequential(nn.Conv(3, 8, (3, 3), rngs=nnx.Rngs(3)), nn.BatchNorm(8),
                               nn.Conv(8, 4, (1, 1), use_bias=False, rngs=nnx.Rngs(4)))
        return nnx.state(models.create("mnist1d_cnn", seed=3)), nnx.state(stack)

    fast = build()
    monkeypatch.setattr(init, "_host_ok", lambda *a: False)  # every initializer takes jax's own path
    slow = build()
    jax.tree.map(np.testing.assert_array_equal, fast, slow)
    # and the reference path is jax's: BatchNorm's constants are functional.init_batch_norm_stats'
    stats = F.init_batch_norm_stats(8)
    np.testing.assert_array_equal(fast[1]["layers"][1]["var"][...], stats["var"])


def test_building_a_deep_network_compiles_a_few_programs_not_one_per_shape():
    nn.BatchNorm(3), nn.Conv(3, 5, (3, 3), rngs=nnx.Rngs(0))  # the one-off programs: key handling
    compiles = []
    handler = logging.Handler()
    handler.emit = lambda record: compiles.append(record.getMessage())
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            layers = [nn.Conv(c, c + 1, (3, 3), rngs=nnx.Rngs(0)) for c in range(8, 40)] + [nn.BatchNorm(c) for c in range(8, 40)]
    finally:
        logger.removeHandler(handler)
    assert len(layers) == 64
    assert sum("Compiling" in m for m in compiles) <= 3, compiles


def test_inside_a_trace_a_concrete_stream_gives_flax_s_keys_and_its_counter_stays_concrete():
    def keys():
        with jax.ensure_compile_time_eval():  # as models.create makes its stream
            rngs = nnx.Rngs(7)
        out = [init.params_key(rngs) for _ in range(3)]
        assert not isinstance(rngs.params.count[...], jax.core.Tracer)  # a traced counter made deep builds quadratic
        assert int(rngs.params.count[...]) == 3
        return jnp.stack([jax.random.key_data(k) for k in out])

    eager = nnx.Rngs(7)
    expected = np.stack([jax.random.key_data(eager.params()) for _ in range(3)])
    np.testing.assert_array_equal(jax.jit(keys)(), expected)
    np.testing.assert_array_equal(keys(), expected)  # eagerly, the fold-in computed on the host
    model = models.create("resnet20", seed=5)
    traced = jax.jit(lambda: nnx.state(models.create("resnet20", seed=5)))()
    jax.tree.map(np.testing.assert_array_equal, nnx.state(model), traced)


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1, 2**16 + 3])
@pytest.mark.parametrize("data", [0, 1, 255, 2**32 - 1])
def test_the_host_fold_in_and_seed_key_are_jax_s(seed, data):
    key = jax.random.key(seed)
    np.testing.assert_array_equal(jax.random.key_data(init.seed_key(seed)), jax.random.key_data(key))
    expected = jax.random.key_data(jax.random.fold_in(key, data))
    np.testing.assert_array_equal(jax.random.key_data(init.fold_in(key, data)), expected)
    raw = jax.random.key_data(key)
    np.testing.assert_array_equal(init.fold_in(raw, data), jax.random.fold_in(raw, data))


def test_seed_key_takes_jax_s_path_outside_its_range_and_fold_in_refuses_what_it_cannot_fold():
    for seed in (-1, 2**31, 2**32 + 5):
        np.testing.assert_array_equal(jax.random.key_data(init.seed_key(seed)), jax.random.key_data(jax.random.key(seed)))
    with pytest.raises(TypeError, match="fold_in: key must be one concrete threefry key"):
        init.fold_in(jax.random.key(0, impl="rbg"), 1)
    with pytest.raises(ValueError, match=r"fold_in: data must lie in \[0, 2\*\*32\), got -1"):
        init.fold_in(jax.random.key(0), -1)


def test_create_with_a_seed_is_create_with_flax_s_rngs_of_that_seed():
    jax.tree.map(np.testing.assert_array_equal, nnx.state(models.create("resnet20", seed=9)),
                 nnx.state(models.create("resnet20", rngs=nnx.Rngs(9))))
    a, b = nnx.Rngs(4), nnx.Rngs(4)
    for _ in range(3):  # the eager host fold-in advances the counter as Flax's call does
        np.testing.assert_array_equal(jax.random.key_data(init.params_key(a)), jax.random.key_data(b.params()))
    assert int(a.params.count[...]) == int(b.params.count[...]) == 3


def test_dropout_stream_is_flax_s_fork_eagerly_and_inside_a_trace():
    def forked_keys():
        with jax.ensure_compile_time_eval():
            rngs = nnx.Rngs(dropout=11)
        streams = [init.dropout_stream(rngs) for _ in range(2)]
        assert not isinstance(rngs.dropout.count[...], jax.core.Tracer)
        return jnp.stack([jax.random.key_data(s()) for s in streams] + [jax.random.key_data(rngs.dropout.key[...])])

    ref = nnx.Rngs(dropout=11)
    streams = [ref.dropout.fork() for _ in range(2)]
    expected = np.stack([jax.random.key_data(s()) for s in streams] + [jax.random.key_data(ref.dropout.key[...])])
    np.testing.assert_array_equal(forked_keys(), expected)
    np.testing.assert_array_equal(jax.jit(forked_keys)(), expected)


def test_linear_is_flax_s_linear_with_the_same_parameters():
    ours, flax_s = nn.Linear(6, 3, rngs=nnx.Rngs(5)), nnx.Linear(6, 3, rngs=nnx.Rngs(5))
    assert isinstance(ours, nnx.Linear)
    jax.tree.map(np.testing.assert_array_equal, nnx.state(ours), nnx.state(flax_s))
