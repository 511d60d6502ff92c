"""Every public functional op refuses non-array inputs with its own TypeError naming the argument.

The table covers every array argument of every public function in ``cnnjax.functional``; a
new public function must join it (the last test checks that none is missing).
"""

import jax
import numpy as np
import pytest

import cnnjax.functional as F

X = np.ones((1, 6, 6, 4), np.float32)
X1 = np.ones((1, 8, 4), np.float32)
X3 = np.ones((1, 4, 4, 4, 2), np.float32)
W = np.ones((3, 3, 4, 2), np.float32)
KEY = jax.random.key(0)

# name -> (call taking the arguments as keywords, valid arguments, the array arguments to spoil)
CALLS = {
    "act_regular": (F.act_regular, dict(x=np.ones((1, 4, 4, 4)), g=1, group="p4"), ["x"]),
    "adaptive_avg_pool": (F.adaptive_avg_pool, dict(x=X, output_size=(2, 2)), ["x"]),
    "adaptive_avg_pool1d": (F.adaptive_avg_pool1d, dict(x=X1, output_size=2), ["x"]),
    "adaptive_avg_pool2d": (F.adaptive_avg_pool2d, dict(x=X, output_size=2), ["x"]),
    "adaptive_avg_pool3d": (F.adaptive_avg_pool3d, dict(x=X3, output_size=2), ["x"]),
    "adaptive_max_pool": (F.adaptive_max_pool, dict(x=X, output_size=(2, 2)), ["x"]),
    "affine_grid": (F.affine_grid, dict(theta=np.eye(2, 3)[None], size=(1, 4, 4, 1)), ["theta"]),
    "aps_pool": (F.aps_pool, dict(x=X, stride=(2, 2)), ["x"]),
    "avg_pool": (F.avg_pool, dict(x=X, window=(2, 2)), ["x"]),
    "avg_pool1d": (F.avg_pool1d, dict(x=X1, kernel_size=2), ["x"]),
    "avg_pool2d": (F.avg_pool2d, dict(x=X, kernel_size=2), ["x"]),
    "avg_pool3d": (F.avg_pool3d, dict(x=X3, kernel_size=2), ["x"]),
    "batch_norm": (F.batch_norm, dict(x=X, scale=np.ones(4), bias=np.zeros(4), stats=F.init_batch_norm_stats(4),
                                      training=True), ["x", "scale", "bias"]),
    "blur_pool": (F.blur_pool, dict(x=X, filter_size=3, stride=(2, 2)), ["x"]),
    "channel_shuffle": (F.channel_shuffle, dict(x=X, groups=2), ["x"]),
    "conv": (F.conv, dict(x=X, w=W, b=np.zeros(2)), ["x", "w", "b"]),
    "conv1d": (F.conv1d, dict(x=X1, w=np.ones((3, 4, 2), np.float32)), ["x", "w", "b"]),
    "conv2d": (F.conv2d, dict(x=X, w=W), ["x", "w", "b"]),
    "conv3d": (F.conv3d, dict(x=X3, w=np.ones((2, 2, 2, 2, 3), np.float32)), ["x", "w", "b"]),
    "conv_transpose": (F.conv_transpose, dict(x=X, w=W), ["x", "w", "b"]),
    "convolve": (F.convolve, dict(x=X, w=W), ["x", "w", "b"]),
    "drop_path": (F.drop_path, dict(x=X, rate=0.5, key=KEY), ["x"]),
    "dropout": (F.dropout, dict(x=X, rate=0.5, key=KEY), ["x"]),
    "fold": (F.fold, dict(x=np.ones((1, 4, 4, 36), np.float32), output_size=(6, 6), kernel_size=(3, 3)), ["x"]),
    "global_avg_pool": (F.global_avg_pool, dict(x=X, spatial_dims=2), ["x"]),
    "global_max_pool": (F.global_max_pool, dict(x=X, spatial_dims=2), ["x"]),
    "grid_sample": (F.grid_sample, dict(x=X, grid=np.zeros((1, 3, 3, 2), np.float32)), ["x", "grid"]),
    "group_batch_norm": (F.group_batch_norm, dict(x=np.ones((1, 4, 4, 8)), scale=np.ones(2), bias=np.zeros(2),
                                                  stats=F.init_batch_norm_stats(2), training=True), ["x", "scale", "bias"]),
    "group_conv": (F.group_conv, dict(x=np.ones((1, 6, 6, 8)), w=np.ones((3, 3, 2, 4, 3))), ["x", "w", "b"]),
    "group_norm": (F.group_norm, dict(x=X, num_groups=2, spatial_dims=2), ["x", "scale", "bias"]),
    "group_pool": (F.group_pool, dict(x=np.ones((1, 4, 4, 8))), ["x"]),
    "instance_norm": (F.instance_norm, dict(x=X, spatial_dims=2), ["x", "scale", "bias"]),
    "layer_norm": (F.layer_norm, dict(x=X), ["x", "scale", "bias"]),
    "lifting_conv": (F.lifting_conv, dict(x=X, w=W), ["x", "w", "b"]),
    "local_response_norm": (F.local_response_norm, dict(x=X, size=3), ["x"]),
    "lp_pool": (F.lp_pool, dict(x=X, p=2.0, window=(2, 2)), ["x"]),
    "max_pool": (F.max_pool, dict(x=X, window=(2, 2)), ["x"]),
    "max_pool1d": (F.max_pool1d, dict(x=X1, kernel_size=2), ["x"]),
    "max_pool2d": (F.max_pool2d, dict(x=X, kernel_size=2), ["x"]),
    "max_pool3d": (F.max_pool3d, dict(x=X3, kernel_size=2), ["x"]),
    "max_pool_with_indices": (F.max_pool_with_indices, dict(x=X, window=(2, 2)), ["x"]),
    "max_unpool": (F.max_unpool, dict(y=np.ones((1, 3, 3, 4)), indices=np.zeros((1, 3, 3, 4), np.int32),
                                      output_size=(6, 6)), ["y", "indices"]),
    "pad": (F.pad, dict(x=X, padding=(1, 1)), ["x"]),
    "pad1d": (F.pad1d, dict(x=X1, padding=1), ["x"]),
    "pad2d": (F.pad2d, dict(x=X, padding=1), ["x"]),
    "pad3d": (F.pad3d, dict(x=X3, padding=1), ["x"]),
    "pixel_shuffle": (F.pixel_shuffle, dict(x=X, factor=(2, 2)), ["x"]),
    "pixel_unshuffle": (F.pixel_unshuffle, dict(x=X, factor=(2, 2)), ["x"]),
    "polyphase_components": (F.polyphase_components, dict(x=X, stride=(2, 2)), ["x"]),
    "resize": (F.resize, dict(x=X, size=(3, 3)), ["x"]),
    "rotate": (F.rotate, dict(x=X, angle=30.0), ["x"]),
    "transform_plane": (F.transform_plane, dict(x=X, g=1), ["x"]),
    "unfold": (F.unfold, dict(x=X, kernel_size=(3, 3)), ["x"]),
    "upsample_nearest": (F.upsample_nearest, dict(x=X, scale=(2, 2)), ["x"]),
}
# public names that take no array: sizes, counts, filters and settings
NO_ARRAYS = {"binomial_filter", "binomial_taps", "compiler_options", "conv_output_size", "conv_param_count", "conv_strategy",
             "conv_transpose_output_size", "group_order", "init_batch_norm_stats", "dispatch", "filters", "steerable", "utils"}
BAD = {"None": None, "str": "image", "mixed list": [[1.0, "a"], [2.0, 3.0]], "ragged list": [[1.0], [2.0, 3.0]],
       "dict": {"x": 1}, "object": object()}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_non_array_inputs_get_a_type_error_naming_the_function_and_argument(name):
    fn, kwargs, arrays = CALLS[name]
    jax.eval_shape(lambda: fn(**kwargs))  # the valid call traces (nothing compiled)
    for arg in arrays:
        for bad in BAD.values():
            if bad is None and arg in ("b", "scale", "bias"):
                continue  # None is allowed there: no bias, no affine
            with pytest.raises(TypeError, match=rf"^{name}: {arg} must be"):
                fn(**dict(kwargs, **{arg: bad}))


def test_every_public_function_is_in_the_battery():
    assert set(F.__all__) - NO_ARRAYS == set(CALLS)
