"""Every public nn layer refuses non-array inputs with a TypeError naming the layer and the argument."""

import inspect

import numpy as np
import pytest
from flax import nnx

import cnnjax.nn as nn

X = np.ones((1, 8, 8, 4), np.float32)
X1 = np.ones((1, 8, 4), np.float32)
X3 = np.ones((1, 4, 4, 4, 4), np.float32)

# name -> (builder, a valid input)
LAYERS = {
    "APSPool": (lambda: nn.APSPool(2, spatial_dims=2), X),
    "AdaptiveAvgPool": (lambda: nn.AdaptiveAvgPool((2, 2)), X),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(2), X1),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(2), X),
    "AdaptiveAvgPool3d": (lambda: nn.AdaptiveAvgPool3d(2), X3),
    "AvgPool": (lambda: nn.AvgPool((2, 2)), X),
    "AvgPool1d": (lambda: nn.AvgPool1d(2), X1),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), X),
    "AvgPool3d": (lambda: nn.AvgPool3d(2), X3),
    "BatchNorm": (lambda: nn.BatchNorm(4), X),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), X1),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(4), X),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(4), X3),
    "BlurPool": (lambda: nn.BlurPool(4, spatial_dims=2), X),
    "Conv": (lambda: nn.Conv(4, 2, (3, 3), rngs=nnx.Rngs(0)), X),
    "Conv1d": (lambda: nn.Conv1d(4, 2, 3), X1),
    "Conv2d": (lambda: nn.Conv2d(4, 2, 3), X),
    "Conv3d": (lambda: nn.Conv3d(4, 2, 3), X3),
    "ConvReLUMaxPool": (lambda: nn.ConvReLUMaxPool(nn.Conv(4, 2, (3, 3), rngs=nnx.Rngs(0)), nn.MaxPool((2, 2))), X),
    "ConvTranspose": (lambda: nn.ConvTranspose(4, 2, (3, 3), rngs=nnx.Rngs(0)), X),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(4, 2, 3), X1),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 2, 3), X),
    "ConvTranspose3d": (lambda: nn.ConvTranspose3d(4, 2, 3), X3),
    "Dropout": (lambda: nn.Dropout(0.5, rngs=nnx.Rngs(0)), X),
    "Flatten": (lambda: nn.Flatten(), X),
    "GlobalAvgPool": (lambda: nn.GlobalAvgPool(spatial_dims=2), X),
    "GroupBatchNorm": (lambda: nn.GroupBatchNorm(1), X),
    "GroupConv": (lambda: nn.GroupConv(1, 2, 3, rngs=nnx.Rngs(0)), X),
    "GroupNorm": (lambda: nn.GroupNorm(2, 4, spatial_dims=2), X),
    "GroupPool": (lambda: nn.GroupPool(), X),
    "InstanceNorm": (lambda: nn.InstanceNorm(4, spatial_dims=2), X),
    "SpatialTransformer": (lambda: nn.SpatialTransformer(lambda x: x.reshape(x.shape[0], -1)[:, :3], 3), X),
    "LayerNorm": (lambda: nn.LayerNorm(4), X),
    "LayerScale": (lambda: nn.LayerScale(4), X),
    "LiftingConv": (lambda: nn.LiftingConv(4, 2, 3, rngs=nnx.Rngs(0)), X),
    "Linear": (lambda: nn.Linear(4, 3), X),
    "LocalResponseNorm": (lambda: nn.LocalResponseNorm(3), X),
    "MaxPool": (lambda: nn.MaxPool((2, 2)), X),
    "MaxPool1d": (lambda: nn.MaxPool1d(2), X1),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), X),
    "MaxPool3d": (lambda: nn.MaxPool3d(2), X3),
    "MaxPoolSubsample": (lambda: nn.MaxPoolSubsample((2, 2), "max"), X),
    "PixelShuffle": (lambda: nn.PixelShuffle((2, 2)), X),
    "SqueezeExcitation": (lambda: nn.SqueezeExcitation(4, 2), X),
    "StochasticDepth": (lambda: nn.StochasticDepth(0.5, "row", rngs=nnx.Rngs(0)), X),
    "Subsample": (lambda: nn.Subsample("max", 2, 2), X),
    "Upsample": (lambda: nn.Upsample(scale_factor=2.0), X),
}
# layers that pass anything through or hold other layers (their first layer checks the input)
NOT_CHECKED = {"Identity", "Sequential"}
BAD = {"None": None, "str": "image", "mixed list": [[1.0, "a"]], "ragged list": [[1.0], [2.0, 3.0]], "object": object()}


def _layers():
    return [n for n in nn.__all__ if inspect.isclass(getattr(nn, n)) and issubclass(getattr(nn, n), nnx.Module)]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_non_array_inputs_get_a_type_error_naming_the_layer(name):
    build, x = LAYERS[name]
    layer = build()
    first = "Conv" if name == "ConvReLUMaxPool" else name
    arg = "inputs" if name == "Linear" else "x"
    for bad in BAD.values():
        with pytest.raises(TypeError, match=rf"^{first}: {arg} must be"):
            layer(bad)


def test_every_public_layer_is_in_the_battery():
    assert set(_layers()) - NOT_CHECKED == set(LAYERS)
