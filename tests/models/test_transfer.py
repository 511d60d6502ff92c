"""Transfer learning: replace_head on every kind of head; freeze by path pattern through optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cnnjax import models


@pytest.mark.parametrize("name, shape, out", [
    ("simple_cnn", (2, 28, 28, 1), (2, 3)), ("resnet20", (2, 32, 32, 3), (2, 3)),
    ("vgg11", (1, 32, 32, 3), (1, 3)), ("unet", (1, 16, 16, 1), (1, 16, 16, 3)), ("mlp", (2, 40, 1), (2, 3)),
])
def test_replace_head_changes_only_the_head(name, shape, out):
    model = nnx.eval_shape(lambda: models.create(name))
    before = {p for p in models.param_paths(model)}
    model = models.replace_head(model, 3)
    assert set(models.param_paths(model)) == before
    y = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert y.shape == out


def test_fine_tune_only_the_head_and_last_stage():
    model = models.replace_head(models.create("resnet20"), 4)
    model.eval()  # batch statistics fixed, so the loss is a pure function of the parameters
    tx = models.freeze(optax.sgd(0.1), [r"^(conv1|bn1|layer1|layer2)\."])
    params = nnx.state(model, nnx.Param)
    opt_state = tx.init(params)
    graphdef, _, rest = nnx.split(model, nnx.Param, ...)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 32, 32, 3)), jnp.float32)
    labels = jnp.array([0, 1, 2, 3])

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit  # one compiled step, not one compile per eager op
    def step(p, opt_state):
        updates, opt_state = tx.update(jax.grad(loss)(p), opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    new = params
    for _ in range(2):
        new, opt_state = step(new, opt_state)
    flat_old = dict(zip(models.param_paths(model), jax.tree.leaves(params)))
    flat_new = dict(zip(models.param_paths(model), jax.tree.leaves(new)))
    for path in flat_old:
        changed = not np.array_equal(flat_old[path], flat_new[path])
        frozen = path.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")
        assert changed != frozen, path
