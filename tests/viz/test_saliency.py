"""Saliency methods against closed forms (linear models, CAM) and their defining properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models, nn
from cnnjax.viz import grad_cam, integrated_gradients, saliency, smoothgrad, vanilla_gradient


@pytest.fixture(scope="module")
def logistic():
    return models.create("logistic", num_classes=10, in_channels=1, seed=0)  # logits = flatten(x) @ W + b


@pytest.fixture(scope="module")
def cnn():
    return models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)


def test_vanilla_gradient_of_a_linear_model_is_its_weight_column(rng, logistic):
    x = rng.normal(size=(3, 40, 1)).astype(np.float32)
    w = np.asarray(logistic.head.kernel[...])
    g = vanilla_gradient(logistic, x, target=np.array([1, 4, 7]))
    np.testing.assert_allclose(g[..., 0], w[:, [1, 4, 7]].T, rtol=1e-6)
    predicted = np.argmax(logistic(x), -1)
    np.testing.assert_allclose(vanilla_gradient(logistic, x)[..., 0], w[:, predicted].T, rtol=1e-6)


def test_vanilla_gradient_matches_finite_differences(rng, cnn):
    x = rng.normal(size=(1, 8, 8, 1)).astype(np.float64)
    g = np.asarray(vanilla_gradient(cnn, x.astype(np.float32), 2))
    cnn.eval()
    f = lambda z: float(cnn(jnp.asarray(z, jnp.float32))[0, 2])  # noqa: E731
    for idx in [(0, 1, 2, 0), (0, 5, 5, 0), (0, 7, 0, 0)]:
        e = np.zeros_like(x)
        e[idx] = 1e-3  # small enough not to cross a ReLU kink, large enough for float32
        assert (f(x + e) - f(x - e)) / 2e-3 == pytest.approx(g[idx], rel=2e-2, abs=2e-4)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_batched_equals_one_by_one_and_jit_equals_eager(rng, cnn):
    x = rng.normal(size=(4, 8, 8, 1)).astype(np.float32)
    t = np.array([0, 3, 3, 9])
    for method, opts in [("vanilla", {}), ("integrated_gradients", {"steps": 8}), ("grad_cam", {"layer": "conv2"})]:
        batch = saliency(cnn, x, t, method, **opts)
        jitted = nnx.jit(lambda m, z, t: saliency(m, z, t, method, **opts))  # one compile per shape
        np.testing.assert_allclose(jitted(cnn, x, t), batch, rtol=1e-4, atol=1e-6)
        single = np.concatenate([jitted(cnn, x[i : i + 1], t[i : i + 1]) for i in range(4)])
        np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-6)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_smoothgrad_averages_noisy_gradients(rng, logistic, cnn):
    x = rng.normal(size=(2, 40, 1)).astype(np.float32)
    np.testing.assert_allclose(smoothgrad(logistic, x, 5), vanilla_gradient(logistic, x, 5), rtol=1e-5)  # linear: no change
    xc = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(smoothgrad(cnn, xc, 1, noise=0.0, samples=3), vanilla_gradient(cnn, xc, 1), rtol=1e-5)
    noisy = smoothgrad(cnn, xc, 1, samples=8, key=jax.random.key(3))
    assert not np.allclose(noisy, vanilla_gradient(cnn, xc, 1))
    np.testing.assert_array_equal(noisy, smoothgrad(cnn, xc, 1, samples=8, key=jax.random.key(3)))


def test_integrated_gradients_completeness(rng, cnn):
    x = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    base = np.full_like(x, -0.5)
    attr = integrated_gradients(cnn, x, 4, baseline=base, steps=128)
    cnn.eval()
    gap = np.asarray(cnn(x)[:, 4] - cnn(base)[:, 4])
    np.testing.assert_allclose(np.asarray(attr).sum((1, 2, 3)), gap, rtol=2e-2, atol=2e-3)


class CamNet(nnx.Module):
    """conv -> ReLU -> conv ('feat') -> global average pool -> linear: the architecture CAM was defined on."""

    def __init__(self, rngs):
        self.conv = nn.Conv(1, 4, (3, 3), padding=1, rngs=rngs)
        self.feat = nn.Conv(4, 6, (3, 3), padding=1, rngs=rngs)
        self.head = nnx.Linear(6, 5, rngs=rngs)

    def __call__(self, x):
        return self.head(self.feat(jax.nn.relu(self.conv(x))).mean((1, 2)))


def test_grad_cam_equals_cam_for_a_global_pool_head(rng):
    net = CamNet(nnx.Rngs(0))
    x = rng.normal(size=(2, 6, 6, 1)).astype(np.float32)
    a = np.asarray(net.feat(jax.nn.relu(net.conv(x))))
    w = np.asarray(net.head.kernel[...])
    want = np.maximum(np.einsum("nhwk,k->nhw", a, w[:, 3] / 36), 0)  # alpha_k = W[k, t] / (H W)
    np.testing.assert_allclose(grad_cam(net, x, 3, layer="feat", resize=False), want, rtol=1e-5, atol=1e-7)
    assert grad_cam(net, x, 3, layer="feat").shape == (2, 6, 6)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_dense_outputs_sum_the_class_logits(rng):
    unet = models.create("unet", num_classes=3, in_channels=1, depth=1, width=4, seed=0)
    x = rng.normal(size=(2, 8, 8, 1)).astype(np.float32)
    assert saliency(unet, x, 1).shape == (2, 8, 8)
    assert grad_cam(unet, x, 1, layer="bottleneck").shape == (2, 8, 8)


def test_grad_cam_takes_the_layer_names_of_param_paths(cnn):
    # "conv2.0" (param_paths' name of the block's conv) and the explicit "conv2.layers.0" are one layer
    assert "conv2.0.kernel" in models.param_paths(cnn)
    # grad_cam and feature_visualization find their layer with locate_module (viz.probe.install_probe)
    assert models.locate_module(cnn, "conv2.0")[2] is models.locate_module(cnn, "conv2.layers.0")[2] is cnn.conv2.layers[0]


def test_errors(cnn):
    x = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="method must be one of vanilla, smoothgrad"):
        saliency(cnn, x, 0, "occlusion")
    with pytest.raises(ValueError, match="no layer 'conv9'; its layers include: .*conv3"):
        grad_cam(cnn, x, 0, layer="conv9")
    resnet = models.create("resnet18", num_classes=2, in_channels=1, seed=0)
    with pytest.raises(ValueError, match="uses 'layer4' as a container.*layer4.0, layer4.1"):
        grad_cam(resnet, np.zeros((1, 32, 32, 1), np.float32), 0, layer="layer4")
