"""The FCN trick: a classifier's fully connected head rewritten as convolutions, so it slides over larger images.

A Linear layer that reads a flattened ``(h, w, C)`` feature map is a conv whose kernel covers
that whole map: the same weights, reshaped to ``(h, w, C, out)`` (channels-last flattening is
``(h, w, C)`` order). The Linear layers after it become 1x1 convs. At the training size the
result is the classifier, with a ``1 x 1`` score map; on a larger image it computes the score
of every window the classifier could see, at the trunk's total stride, sharing the conv
features between overlapping windows (Long et al. 2015; Sermanet et al. 2014, OverFeat).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnnjax import nn
from cnnjax.models.base import run_stages
from cnnjax.models.small import ConvMLP, PlainConvNet
from cnnjax.models.vgg import FeaturesClassifier


class FullyConvolutional(nnx.Module):
    """A classifier's conv trunk followed by its head as convolutions: ``(*batch, *size, C) -> (*batch, *positions, K)``.

    Built by :func:`convolutionalize`. ``trunk`` is the classifier whose conv layers it runs
    (a copy); ``head`` holds the converted layers and activations, in order; ``window`` is the
    training input's spatial size, the window each output position scores.
    """

    def __init__(self, trunk: nnx.Module, head: list, window: tuple[int, ...]):
        self.trunk, self.head, self.window = trunk, nnx.List(head), window

    def features(self, x: jax.Array) -> jax.Array:
        t = self.trunk
        if isinstance(t, FeaturesClassifier):
            for layer in t.features.layers:
                x = layer(x)
            return x
        return run_stages(t, x, t.stage_names, {})

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.features(x)
        for layer in self.head:
            x = layer(x)
        return x


def _as_conv(linear: nnx.Linear, spatial: tuple[int, ...], channels: int) -> nn.Conv:
    """A conv with ``linear``'s weights: kernel ``(*spatial, channels, out)``, valid padding."""
    out = linear.kernel.shape[-1]
    conv = nn.Conv(channels, out, spatial, rngs=nnx.Rngs(0), use_bias=linear.bias is not None)
    conv.kernel[...] = linear.kernel[...].reshape(spatial + (channels, out))
    if linear.bias is not None:
        conv.bias[...] = linear.bias[...]
    return conv


def convolutionalize(model: nnx.Module, input_shape: Sequence[int]) -> FullyConvolutional:
    """Rewrite a classifier's flatten + Linear head as convolutions (the FCN trick); returns a new model.

    Args:
      model: a zoo classifier whose head flattens a conv feature map into Linear layers:
        ``simple_cnn``, ``large_net``, ``lenet5`` (conv stages + MLP), the plain CNNs with
        ``head="flatten"`` (``mnist1d_cnn``, ``mnist1d_convbase``, ``digits_cnn``; 1-D too) and
        the VGGs and AlexNet (whose adaptive pool is dropped: at the training size it is the identity).
      input_shape: the training input's ``(*size, C)`` (e.g. ``(28, 28, 1)``), which fixes the
        feature map the first Linear layer reads.

    Returns:
      A :class:`FullyConvolutional` with copies of the weights. On an input of the training
      size its output is ``(*batch, 1, 1, K)``, equal to the classifier's logits; on a larger
      input, the dense map of every window's scores, at the trunk's total stride. When the
      trunk's convs are unpadded (LeNet-5, the MNIST-1D CNN) that map equals what
      :func:`cnnjax.detection.sliding_window_scores` computes window by window; with padded
      convs a window's border pixels see their neighbours in the large image, where the
      classifier alone saw zeros, so the scores differ near window edges.

    Example:
      >>> from cnnjax import models
      >>> net = models.create("simple_cnn")
      >>> fcn = convolutionalize(net, (28, 28, 1))
      >>> [jax.eval_shape(fcn, jnp.ones(s)).shape for s in [(1, 28, 28, 1), (1, 60, 44, 1)]]
      [(1, 1, 1, 10), (1, 9, 5, 10)]
    """
    fn = "convolutionalize"
    if not isinstance(model, (ConvMLP, PlainConvNet, FeaturesClassifier)):
        raise TypeError(f"{fn}: model must be a zoo classifier whose head flattens a conv feature map into Linear "
                        f"layers (simple_cnn, large_net, lenet5, mnist1d_cnn, mnist1d_convbase, digits_cnn, the VGGs, "
                        f"alexnet); got {type(model).__name__}. Models with a global-average-pooled head already "
                        "slide: their conv trunk runs on any size.")
    if isinstance(model, PlainConvNet) and model.head_kind != "flatten":
        raise ValueError(f"{fn}: this model's head is {model.head_kind!r} (global average pooling), not a flattening "
                         "Linear head; run its conv stages on the large image instead")
    model = nnx.clone(model)
    model.eval()
    input_shape = tuple(int(s) for s in input_shape)
    trunk = FullyConvolutional(model, [], input_shape[:-1])
    shape = jax.eval_shape(trunk.features, jax.ShapeDtypeStruct((1,) + input_shape, jnp.float32)).shape
    spatial, channels = tuple(shape[1:-1]), shape[-1]
    if isinstance(model, ConvMLP):
        layers = [layer for hidden in model.hidden for layer in (hidden, jax.nn.relu)] + [model.head]
    elif isinstance(model, PlainConvNet):
        layers = [model.head]
    else:
        layers = list(model.classifier.layers)  # Linear, ReLU, Dropout...: the others act per position
    first = next(layer for layer in layers if isinstance(layer, nnx.Linear))
    if first.kernel.shape[0] != channels * int(np.prod(spatial)):
        raise ValueError(f"{fn}: input_shape {input_shape} gives a feature map of shape {tuple(shape[1:])}, but the "
                         f"first Linear layer reads {first.kernel.shape[0]} features: pass the training input's (*size, C)")
    head = []
    for layer in layers:
        if layer is first:
            head.append(_as_conv(layer, spatial, channels))
        elif isinstance(layer, nnx.Linear):
            head.append(_as_conv(layer, (1,) * len(spatial), layer.kernel.shape[0]))
        else:
            head.append(layer)
    return FullyConvolutional(model, head, input_shape[:-1])
