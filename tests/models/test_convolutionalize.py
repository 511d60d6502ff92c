"""The FCN trick: convolutionalized classifiers equal the classifier at its size and window-by-window scoring on larger images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models
from cnnjax.detection import sliding_window_scores

# name, training input, options, total stride of the trunk, whether its convs are unpadded
CASES = [
    ("lenet5", (32, 32, 1), {}, 4, True),
    ("mnist1d_cnn", (40, 1), {}, 8, True),
    ("simple_cnn", (28, 28, 1), {}, 4, False),
    ("digits_cnn", (8, 8, 1), {}, 2, False),
]


@pytest.mark.parametrize("name, shape, options, stride, unpadded", CASES)
def test_equals_the_classifier_and_the_sliding_window_scores(rng, name, shape, options, stride, unpadded):
    model = models.create(name, **options, seed=0)
    model.eval()
    fcn = models.convolutionalize(model, shape)
    forward = nnx.jit(lambda m, x: m(x))
    x = jnp.asarray(rng.normal(size=(3, *shape)), jnp.float32)
    dense = forward(fcn, x)
    assert dense.shape == (3,) + (1,) * (len(shape) - 1) + dense.shape[-1:]
    np.testing.assert_allclose(dense.reshape(3, -1), forward(model, x), rtol=1e-4, atol=1e-5)
    if not unpadded:
        return  # padded convs: inside a big image a window's border sees its neighbours, not the classifier's zeros
    if len(shape) == 2:  # sliding_window_scores slides over images; 1-D signals: compare by hand
        big = jnp.asarray(rng.normal(size=(2, shape[0] + 3 * stride, shape[1])), jnp.float32)
        want = jnp.stack([forward(model, big[:, i * stride: i * stride + shape[0]]) for i in range(4)], 1)
    else:
        big = jnp.asarray(rng.normal(size=(2, shape[0] + 3 * stride, shape[1] + 2 * stride, shape[2])), jnp.float32)
        want = sliding_window_scores(lambda w: forward(model, w), big, shape[:2], stride)
    got = forward(fcn, big)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_vgg_head_becomes_7x7_and_1x1_convs():
    model = models.create("vgg11", num_classes=5, seed=0)
    fcn = models.convolutionalize(model, (224, 224, 3))
    convs = [layer for layer in fcn.head if hasattr(layer, "kernel")]
    assert [c.kernel.shape for c in convs] == [(7, 7, 512, 4096), (1, 1, 4096, 4096), (1, 1, 4096, 5)]
    out = nnx.eval_shape(lambda m, x: m(x), fcn, jax.ShapeDtypeStruct((1, 256, 288, 3), jnp.float32))
    assert out.shape == (1, 2, 3, 5)  # 8x9 features, a 7x7 kernel: every window at stride 32


def test_the_original_model_is_untouched_and_errors():
    model = models.create("simple_cnn", seed=0)
    fcn = models.convolutionalize(model, (28, 28, 1))
    fcn.head[0].kernel[...] = 0 * fcn.head[0].kernel[...]
    assert float(jnp.abs(model.hidden[0].kernel[...]).max()) > 0
    with pytest.raises(ValueError, match="first Linear layer reads 784 features"):
        models.convolutionalize(model, (32, 32, 1))
    with pytest.raises(TypeError, match="convolutionalize: model must be a zoo classifier"):
        models.convolutionalize(models.create("resnet20"), (32, 32, 3))
    with pytest.raises(ValueError, match="global average pooling"):
        models.convolutionalize(models.create("digits_cnn", head="global"), (8, 8, 1))
