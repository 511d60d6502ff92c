"""The dispatch point: implementations registered per platform, switches that jit keys on, and the lax maths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import functional as F
from cnnjax.functional import dispatch


def _hlo(f, *args):
    return f.lower(*args).as_text()


def test_switching_after_a_first_jit_takes_effect():
    """A function jitted once and called again under conv_strategy("lax") is traced again: the switch is part of
    jit's cache key, so it is never silently ignored."""
    traces = []

    @jax.jit
    def f(x, w):
        traces.append(dispatch.switches())
        return F.max_pool(jax.nn.relu(F.conv(x, w, padding=1)), (2, 2))

    x, w = jnp.ones((2, 8, 8, 16)), jnp.full((3, 3, 16, 16), 0.1)
    y = f(x, w)
    with F.conv_strategy("lax"):
        y_lax = f(x, w)
        lax_jaxpr = str(jax.make_jaxpr(f)(x, w))
    assert len(traces) == 2 and traces[1].conv_strategy == "lax"
    assert "conv_general_dilated" in lax_jaxpr and "reduce_window_max" in lax_jaxpr  # every pool, the 2x2 one too
    assert "custom_call" not in _hlo(jax.jit(lambda x, w: F.conv(x, w)), x, w) or jax.default_backend() != "cpu" \
        or dispatch.choose("conv", c_in=16, kernel=(3, 3), strides=(1, 1), groups=1, input_dilation=(1, 1),
                           out=(6, 6), dtype=jnp.dtype("float32")) != "lax"
    np.testing.assert_allclose(y, y_lax, rtol=1e-5, atol=1e-5)
    f(x, w)
    assert len(traces) == 2  # back outside the block: the first trace is reused


def test_excluding_is_keyed_on_too():
    f = jax.jit(lambda x: F.max_pool(x, (3, 3), 2, 1))
    x = jnp.ones((2, 9, 9, 4))
    inside = dispatch.excluding(*dispatch.implementations("max_pool"))
    with inside:
        assert dispatch.choose("max_pool", window=(3, 3), strides=(2, 2), pads=((1, 1), (1, 1)), dilation=(1, 1),
                               spatial=(9, 9), dtype=jnp.dtype("float32")) == "lax"
        plain = f(x)
    np.testing.assert_array_equal(plain, f(x))


def test_lax_strategy_is_the_maths_everywhere():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 7, 3)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 3, 4)), jnp.float32)
    with F.conv_strategy("lax"):
        jaxpr = str(jax.make_jaxpr(lambda x, w: F.conv_transpose(F.conv(x, w), w.transpose(0, 1, 3, 2)))(x, w))
        bn = str(jax.make_jaxpr(lambda x: F.batch_norm(x, None, None, F.init_batch_norm_stats(3), training=True))(x))
    assert "custom" not in jaxpr and "onednn" not in bn


def test_a_registered_implementation_is_chosen_and_checked(monkeypatch):
    monkeypatch.setattr(dispatch, "_impls", {op: dict(v) for op, v in dispatch._impls.items()})
    monkeypatch.setattr(dispatch, "_rules", dict(dispatch._rules))
    calls = []

    def doubled(x, window, strides, pads, dilation):
        calls.append(window)
        return 2 * F.max_pool(x, window, strides, pads, dilation=dilation) / 2

    dispatch.register("max_pool", "doubled", doubled, platform=jax.default_backend(),
                      supports=lambda *, window, **_: len(window) == 2, doc="2-D windows only")
    x = jnp.ones((1, 4, 4, 1))
    with F.conv_strategy("lax"):  # the maths for the inner call
        assert dispatch.implementation("max_pool", "doubled", fn="t", window=(2, 2), strides=(2, 2),
                                       pads=((0, 0), (0, 0)), dilation=(1, 1), spatial=(4, 4),
                                       dtype=x.dtype)(x, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1)).shape == (1, 2, 2, 1)
    assert calls == [(2, 2)]
    with pytest.raises(ValueError, match=r"t: strategy='doubled' cannot compute this case: 2-D windows only"):
        dispatch.choose("max_pool", "doubled", fn="t", window=(2,), strides=(2,), pads=((0, 0),), dilation=(1,),
                        spatial=(4,), dtype=x.dtype)
    with pytest.raises(ValueError, match=r"t: unknown strategy 'nope'; allowed: 'auto', 'lax', .*'doubled'"):
        dispatch.choose("max_pool", "nope", fn="t")
    dispatch.register_rule("max_pool", jax.default_backend(), lambda usable, **g: "doubled" if usable("doubled") else None)
    assert dispatch.choose("max_pool", window=(2, 2)) == "doubled"
    with dispatch.excluding("doubled"):
        assert dispatch.choose("max_pool", window=(2, 2)) == "lax"
    with pytest.raises(ValueError, match="'lax' names the op's own lax maths"):
        dispatch.register("conv", "lax", doubled, platform=None)
    with pytest.raises(ValueError, match="register: unknown op 'fft'"):
        dispatch.register("fft", "x", doubled, platform=None)


def test_functional_names_no_backend():
    """The functional core holds the maths; what runs faster is registered from cnnjax.backends."""
    import pathlib

    root = pathlib.Path(F.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text().lower()
        assert "onednn" not in text and "import cnnjax.backends" not in text and "from cnnjax.backends" not in text, \
            path.name
