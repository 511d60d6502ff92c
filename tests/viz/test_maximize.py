"""Feature visualisation against the closed-form maximiser of a linear unit, and its defining properties."""

import jax
import numpy as np
import pytest
from flax import nnx

from cnnjax import models
from cnnjax.viz import feature_visualization, plot_feature_visualization


@pytest.fixture(scope="module")
def logistic():
    return models.create("logistic", num_classes=10, in_channels=1, seed=0)  # logits = flatten(x) @ W + b


@pytest.mark.parametrize("parametrization", ["pixel", "fourier"])
def test_a_linear_unit_is_maximised_by_its_weights(logistic, parametrization):
    # J(x) = w_c . x + b_c - l2 * mean(x^2) over 40 inputs peaks at x* = 40 w_c / (2 l2): both
    # parametrisations are invertible linear maps of the image, so both must reach that point
    w = np.asarray(logistic.head.kernel[...])
    before = jax.tree.leaves(nnx.state(logistic))
    x = feature_visualization(logistic, "logits", [3, 7], shape=(40, 1), steps=1500, lr=0.05, l2=1.0, jitter=0,
                              parametrization=parametrization)
    assert x.shape == (2, 40, 1)
    np.testing.assert_allclose(x[..., 0], 20 * w[:, [3, 7]].T, atol=0.03)
    assert all(np.array_equal(a, b) for a, b in zip(before, jax.tree.leaves(nnx.state(logistic))))  # model untouched


def test_value_range_bounds_the_image_and_plots_draw(logistic, tmp_path):
    x = feature_visualization(logistic, "logits", 0, shape=(40, 1), steps=50, value_range=(-1.0, 2.0))
    assert x.shape == (1, 40, 1) and x.min() > -1.0 and x.max() < 2.0
    assert x[0, :, 0] @ np.asarray(logistic.head.kernel[...])[:, 0] > 0  # it went up the unit's gradient
    fig = plot_feature_visualization(x, tmp_path / "fv.png", titles=["class 0"])
    assert fig.axes[0].get_title() == "class 0" and (tmp_path / "fv.png").stat().st_size > 1000
    plot_feature_visualization(np.zeros((3, 8, 8, 1)), cols=2)  # images as tiles


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_each_class_image_maximises_its_own_class_score_most():
    cnn = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
    cnn.train()  # feature visualisation evaluates in eval mode whatever the model's mode
    x = feature_visualization(cnn, "logits", list(range(10)), shape=(8, 8, 1), steps=200, value_range=(-1.0, 2.0))
    cnn.eval()
    scores = np.asarray(cnn(x))  # scores[k, c]: class c's logit for the image made for class k
    assert list(scores.argmax(0)) == list(range(10))
    units = feature_visualization(cnn, "conv2", [0, 5], shape=(8, 8, 1), steps=100, blur_every=4,
                                  parametrization="pixel", jitter=2)
    assert units.shape == (2, 8, 8, 1) and np.isfinite(units).all()


def test_errors_name_the_argument(logistic):
    cnn = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
    with pytest.raises(ValueError, match="feature_visualization: the model has no layer 'conv9'; its layers include: .*conv2"):
        feature_visualization(cnn, "conv9", 0, shape=(8, 8, 1))
    resnet = models.create("resnet18", num_classes=2, in_channels=1, seed=0)
    with pytest.raises(ValueError, match="feature_visualization: the model uses 'layer4' as a container.*layer4.0, layer4.1"):
        feature_visualization(resnet, "layer4", 0, shape=(32, 32, 1))
    with pytest.raises(ValueError, match="layer 'logits' has 10 channels, got channels=\\[10\\]"):
        feature_visualization(logistic, "logits", 10, shape=(40, 1))
    with pytest.raises(TypeError, match="channels must be a channel index or a non-empty list"):
        feature_visualization(logistic, "logits", [], shape=(40, 1))
    with pytest.raises(ValueError, match="parametrization must be one of fourier, pixel, got 'dct'"):
        feature_visualization(logistic, "logits", 0, shape=(40, 1), parametrization="dct")
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        feature_visualization(logistic, "logits", 0, shape=(40, 1), steps=0)
    with pytest.raises(ValueError, match="value_range must be \\(lo, hi\\) with lo < hi"):
        feature_visualization(logistic, "logits", 0, shape=(40, 1), value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="shape must be one input's"):
        feature_visualization(logistic, "logits", 0, shape=(1, 40, 1, 1, 1))
    with pytest.raises(ValueError, match="images must be \\(K, H, W, C\\) or \\(K, L, C\\)"):
        plot_feature_visualization(np.zeros((8, 8)))
