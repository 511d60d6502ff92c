"""The zoo: every model's parameter count pinned, forward shapes, named features, the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import models
from cnnjax.functional import conv_param_count


def n_params(model):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def abstract(name, **kw):
    """Build without allocating (VGG-19 is 575 MB of float32)."""
    return nnx.eval_shape(lambda: models.create(name, **kw))


# Defaults: 10 classes for the small models, 1000 for the ImageNet ones. The ImageNet counts are
# torchvision's; the CIFAR ResNets' are those of He et al.'s option-A networks (20/32/44/56 as published;
# 110 extends them by 97,216 per added block in each stage).
PARAM_COUNTS = {
    "simple_cnn": 106_154, "large_net": 10_002, "lenet5": 61_706,
    "mnist1d_cnn": 2_050, "mnist1d_convbase": 5_210, "mlp": 15_210, "logistic": 410,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    "densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "inception_v3": 27_161_264,
    "unet": 31_036_546, "fcn": 11_769_814, "yolo_v1": 3_945_278,
    "p4cnn": 21_940, "z2cnn": 22_270, "gcnn": 23_608, "digits_cnn": 15_338,
    # the modern families, torchvision's counts (GoogLeNet's with its two auxiliary heads, as its constructor builds)
    "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272, "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696, "googlenet": 13_004_888, "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
    "mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x0_5": 1_366_792, "shufflenet_v2_x1_0": 2_278_604, "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
    "efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960, "efficientnet_v2_s": 21_458_488,
    "efficientnet_v2_m": 54_139_356, "efficientnet_v2_l": 118_515_272,
    "convnext_tiny": 28_589_128, "convnext_small": 50_223_688, "convnext_base": 88_591_464,
    "convnext_large": 197_767_336,
    "regnet_x_400mf": 5_495_976, "regnet_x_800mf": 7_259_656, "regnet_x_1_6gf": 9_190_136, "regnet_x_3_2gf": 15_296_552,
    "regnet_x_8gf": 39_572_648, "regnet_x_16gf": 54_278_536, "regnet_x_32gf": 107_811_560,
    "regnet_y_400mf": 4_344_144, "regnet_y_800mf": 6_432_512, "regnet_y_1_6gf": 11_202_430,
    "regnet_y_3_2gf": 19_436_338, "regnet_y_8gf": 39_381_472, "regnet_y_16gf": 83_590_140,
    "regnet_y_32gf": 145_046_770, "regnet_y_128gf": 644_812_894,
}


def test_every_registered_model_has_a_pinned_count():
    assert sorted(PARAM_COUNTS) == models.list_models()


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_param_count(name):
    assert n_params(abstract(name)) == PARAM_COUNTS[name]


def test_inception_without_aux_head():
    assert n_params(abstract("inception_v3", aux_logits=False)) == 23_834_568


def test_mlp_widths_give_the_lecture_network_and_a_plain_stack():
    # the CNN lecture's fully connected MNIST-1D network: 150,185 parameters (our reading: 40-256-262-265-10)
    assert n_params(abstract("mlp", hidden=(256, 262, 265))) == 40 * 256 + 256 + 256 * 262 + 262 + 262 * 265 + 265 + 265 * 10 + 10 == 150_185
    net = models.create("mlp", hidden=[3, 5], seed=0)
    x = np.random.default_rng(0).normal(size=(2, 40, 1)).astype(np.float32)
    h1 = np.maximum(x[..., 0] @ np.asarray(net.fc1.kernel[...]) + np.asarray(net.fc1.bias[...]), 0)
    h2 = np.maximum(h1 @ np.asarray(net.fc2.kernel[...]) + np.asarray(net.fc2.bias[...]), 0)  # no residual
    want = h2 @ np.asarray(net.head.kernel[...]) + np.asarray(net.head.bias[...])
    np.testing.assert_allclose(net(x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="mlp: hidden must be an int or a non-empty sequence of ints, got \\(\\)"):
        models.create("mlp", hidden=())
    with pytest.raises(ValueError, match="mlp: hidden widths must be >= 1"):
        models.create("mlp", hidden=(4, 0))


def test_unet_count_matches_a_layer_by_layer_formula():
    def double(a, b):  # conv (no bias) + BN scale/bias, twice
        return conv_param_count((3, 3), a, b, bias=False) + 2 * b + conv_param_count((3, 3), b, b, bias=False) + 2 * b

    w = [64, 128, 256, 512, 1024]
    total = double(1, 64) + sum(double(a, b) for a, b in zip(w[:-1], w[1:]))  # encoder + bottleneck
    total += sum(conv_param_count((2, 2), b, a) + double(2 * a, a) for a, b in zip(w[:-1], w[1:]))  # decoder
    total += conv_param_count((1, 1), 64, 2)
    assert total == PARAM_COUNTS["unet"]


SMALL_INPUTS = {
    "simple_cnn": (28, 28, 1), "large_net": (32, 32, 3), "lenet5": (32, 32, 1),
    "mnist1d_cnn": (40, 1), "mnist1d_convbase": (40, 1), "mlp": (40, 1), "logistic": (40, 1),
    "resnet20": (32, 32, 3), "p4cnn": (28, 28, 1), "z2cnn": (28, 28, 1), "digits_cnn": (8, 8, 1),
}


@pytest.mark.parametrize("name", sorted(SMALL_INPUTS))
def test_small_models_forward_batched_unbatched_and_features(name):
    model = models.create(name, num_classes=7)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, *SMALL_INPUTS[name])), jnp.float32)
    model.eval()
    forward = nnx.jit(lambda m, x: m(x, return_features=True))  # one compile per shape, not one per op
    logits, features = forward(model, x)
    assert logits.shape == (3, 7)
    assert "pre_logits" in features and all(v.shape[0] == 3 for v in features.values())
    np.testing.assert_allclose(forward(model, x[1])[0], logits[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name, shape, out",
    [
        ("resnet18", (1, 64, 64, 3), (1, 5)), ("resnext50_32x4d", (1, 64, 64, 3), (1, 5)),
        ("vgg11_bn", (1, 32, 32, 3), (1, 5)), ("alexnet", (1, 224, 224, 3), (1, 5)),
        ("densenet121", (1, 64, 64, 3), (1, 5)), ("inception_v3", (1, 299, 299, 3), (1, 5)),
        ("unet", (1, 36, 36, 1), (1, 36, 36, 5)), ("fcn", (1, 64, 64, 3), (1, 64, 64, 5)),
        ("yolo_v1", (1, 448, 448, 3), (1, 7, 7, 15)),
        ("mobilenet_v3_small", (1, 64, 64, 3), (1, 5)), ("efficientnet_b0", (1, 64, 64, 3), (1, 5)),
        ("convnext_tiny", (1, 64, 64, 3), (1, 5)), ("regnet_y_400mf", (1, 64, 64, 3), (1, 5)),
        ("shufflenet_v2_x0_5", (1, 64, 64, 3), (1, 5)), ("squeezenet1_1", (1, 64, 64, 3), (1, 5)),
        ("googlenet", (1, 64, 64, 3), (1, 5)), ("efficientnet_v2_s", (1, 64, 64, 3), (1, 5)),
    ],
)
def test_large_models_output_shapes(name, shape, out):
    model = abstract(name, num_classes=5)
    logits, features = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, jax.ShapeDtypeStruct(shape, jnp.float32))
    assert logits.shape == out
    assert "pre_logits" in features


def test_resnet_features_are_the_stages():
    model = abstract("resnet50")
    _, f = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.float32))
    assert {k: v.shape for k, v in f.items()} == {
        "stem": (2, 56, 56, 64), "layer1": (2, 56, 56, 256), "layer2": (2, 28, 28, 512),
        "layer3": (2, 14, 14, 1024), "layer4": (2, 7, 7, 2048), "pre_logits": (2, 2048),
    }


def test_unet_1d_and_odd_sizes():
    model = abstract("unet", spatial_dims=1, depth=3, width=4, num_classes=3)
    assert nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 45, 1), jnp.float32)).shape == (2, 45, 3)
    model = abstract("unet", depth=2, width=4, in_channels=3)
    assert nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((13, 11, 3), jnp.float32)).shape == (13, 11, 2)


def test_yolo_grid_and_boxes_are_configurable():
    model = abstract("yolo_v1", num_classes=3, grid=4, boxes=3, width=8)
    y = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 128, 128, 3), jnp.float32))
    assert y.shape == (2, 4, 4, 3 * 5 + 3)


def test_cifar_resnet_with_circular_padding_is_shift_equivariant_before_the_strides():
    model = models.create("resnet20", padding_mode="circular")
    model.eval()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 32, 32, 3)), jnp.float32)
    _, f = model(x, return_features=True)
    _, g = model(jnp.roll(x, (3, 5), axis=(1, 2)), return_features=True)
    np.testing.assert_allclose(g["layer1"], jnp.roll(f["layer1"], (3, 5), axis=(1, 2)), rtol=1e-4, atol=1e-4)


def test_create_errors_list_the_choices():
    with pytest.raises(ValueError, match=r"create: unknown model 'resnet17'; available: .*resnet18"):
        models.create("resnet17")
    with pytest.raises(ValueError, match=r"create: model 'simple_cnn' has no option\(s\) \['depth'\]; its options: num_classes, in_channels"):
        models.create("simple_cnn", depth=3)
    with pytest.raises(ValueError, match=r"CifarResNet: depth must be 6n\+2"):
        models.resnet.CifarResNet(21, 10, 3, nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"fcn: backbone 'resnet18' has no spatial feature 'layer9'"):
        models.create("fcn", feature="layer9")


def test_same_seed_same_model():
    a = nnx.state(models.create("simple_cnn", seed=3), nnx.Param)
    b = nnx.state(models.create("simple_cnn", seed=3), nnx.Param)
    c = nnx.state(models.create("simple_cnn", seed=4), nnx.Param)
    assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_inception_runs_its_auxiliary_head_in_training_only_and_takes_75_pixels_in_eval():
    model = abstract("inception_v3", num_classes=5)
    x299, x75 = jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32), jax.ShapeDtypeStruct((2, 75, 90, 3), jnp.float32)
    _, features = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, x299)
    assert features["aux_logits"].shape == (1, 5)
    with pytest.raises(ValueError, match=r"inception_v3: in training mode the auxiliary head needs the 17x17 grid.*"
                                         r"got 7x7 from a 150x150 input; call model.eval\(\)"):
        nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, 150, 150, 3), jnp.float32))
    model.eval()
    logits, features = nnx.eval_shape(lambda m, x: m(x, return_features=True), model, x75)
    assert logits.shape == (2, 5) and "aux_logits" not in features
    with pytest.raises(ValueError, match=r"inception_v3: input of 74x80 pixels .* at least 75x75"):
        nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, 74, 80, 3), jnp.float32))
    with pytest.raises(ValueError, match="transform_input=True needs in_channels=3"):
        models.create("inception_v3", in_channels=1, transform_input=True)
