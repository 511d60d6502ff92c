"""One table of every functional op, as ``name -> make(rng, dtype) -> (f, x)``.

``f`` takes one example ``(*spatial, C)`` or a batch of them; the property tests
(jit, vmap, extra batch dims, gradients, half precision) all run over this table.
"""

from __future__ import annotations

import jax
import numpy as np

import cnnjax.functional as F


def _arr(rng, shape, dtype, positive=False):
    a = rng.normal(size=shape)
    return (np.abs(a) + 0.5 if positive else a).astype(dtype)


def _conv(n, **kw):
    def make(rng, dtype):
        k = (3, 2, 2)[:n]
        groups = kw.get("groups", 1)
        w = _arr(rng, k + (4 // groups, 6), dtype)
        b = _arr(rng, (6,), dtype)
        return (lambda x: F.conv(x, w, b, **kw)), _arr(rng, (7, 6, 5)[:n] + (4,), dtype)

    return make


def _simple(f, shape, positive=False):
    def make(rng, dtype):
        return f, _arr(rng, shape, dtype, positive)

    return make


def _with_params(build, shape):
    def make(rng, dtype):
        return build(rng, dtype), _arr(rng, shape, dtype)

    return make


OPS = {
    "conv1d_causal_dilated": _conv(1, padding="CAUSAL", dilation=2),
    "conv2d_same_stride_circular": _conv(2, stride=2, padding="SAME", padding_mode="circular"),
    "conv2d_reflect_groups": _conv(2, padding=1, padding_mode="reflect", groups=2),
    "conv3d_full_replicate": _conv(3, padding=((1, 0), (0, 1), (1, 1)), padding_mode="replicate"),
    "conv2d_input_dilation": _conv(2, input_dilation=2, padding="FULL"),
    "convolve2d": _with_params(lambda rng, dt: (lambda x, w=_arr(rng, (2, 3, 3, 2), dt): F.convolve(x, w, padding="SAME")), (6, 7, 3)),
    "conv_transpose2d": _with_params(
        lambda rng, dt: (lambda x, w=_arr(rng, (3, 3, 4, 3), dt): F.conv_transpose(x, w, stride=2, padding=1, output_padding=1, groups=2)),
        (4, 5, 4),
    ),
    "unfold2d": _simple(lambda x: F.unfold(x, (3, 2), stride=(2, 1), padding=1), (6, 5, 3)),
    "fold2d": _simple(lambda x: F.fold(x, (6, 5), (3, 2), stride=(2, 1), padding=1), (3, 6, 18)),
    "max_pool2d_ceil": _simple(lambda x: F.max_pool(x, (3, 3), (2, 2), 1, ceil_mode=True), (7, 8, 3)),
    "avg_pool1d_exclude_pad": _simple(lambda x: F.avg_pool(x, (3,), (2,), 1, count_include_pad=False), (9, 3)),
    "lp_pool3d": _simple(lambda x: F.lp_pool(x, 2.0, (2, 2, 2)), (4, 4, 4, 2), positive=True),
    "global_avg_pool2d": _simple(lambda x: F.global_avg_pool(x, spatial_dims=2), (5, 6, 3)),
    "global_max_pool1d": _simple(lambda x: F.global_max_pool(x, spatial_dims=1), (7, 3)),
    "adaptive_avg_pool2d": _simple(lambda x: F.adaptive_avg_pool(x, (3, 4)), (7, 9, 2)),
    "adaptive_max_pool1d": _simple(lambda x: F.adaptive_max_pool(x, (4,)), (10, 2)),
    "max_pool_with_indices": _simple(lambda x: F.max_pool_with_indices(x, (2, 2))[0], (6, 6, 2)),
    "max_unpool": _simple(lambda x: F.max_unpool(*F.max_pool_with_indices(x, (2, 2)), (6, 7)), (6, 7, 2)),
    "upsample_nearest": _simple(lambda x: F.upsample_nearest(x, (2, 3)), (3, 4, 2)),
    "resize_bilinear": _simple(lambda x: F.resize(x, (9, 5), "bilinear"), (4, 6, 2)),
    "resize_bicubic_align": _simple(lambda x: F.resize(x, (7, 9), "bicubic", align_corners=True), (5, 4, 2)),
    "resize_nearest_3d": _simple(lambda x: F.resize(x, (5, 3, 4)), (3, 4, 2, 2)),
    "pixel_shuffle": _simple(lambda x: F.pixel_shuffle(x, (2, 2)), (3, 4, 8)),
    "pixel_unshuffle": _simple(lambda x: F.pixel_unshuffle(x, (2, 3)), (4, 6, 2)),
    "pad_reflect": _simple(lambda x: F.pad(x, ((1, 2), (2, 0)), "reflect"), (4, 5, 2)),
    "batch_norm_eval": _with_params(
        lambda rng, dt: (lambda x, s=_arr(rng, (3,), dt): F.batch_norm(
            x, s, s, {"mean": s, "var": abs(s) + 1}, training=False)[0]),
        (4, 5, 3),
    ),
    "batch_norm_train": _with_params(
        lambda rng, dt: (lambda x, s=_arr(rng, (3,), dt): F.batch_norm(
            x, s, s, {"mean": s, "var": abs(s) + 1}, training=True)[0]),
        (4, 5, 3),
    ),
    "layer_norm": _with_params(lambda rng, dt: (lambda x, s=_arr(rng, (3,), dt): F.layer_norm(x, s, s)), (4, 5, 3)),
    "group_norm": _with_params(lambda rng, dt: (lambda x, s=_arr(rng, (4,), dt): F.group_norm(x, 2, s, s, spatial_dims=2)), (4, 5, 4)),
    "instance_norm": _simple(lambda x: F.instance_norm(x, spatial_dims=1), (6, 3)),
    "local_response_norm": _simple(lambda x: F.local_response_norm(x, 3, alpha=0.1), (4, 3, 5)),
    "dropout": _simple(lambda x: F.dropout(x, 0.3, jax.random.key(0)), (4, 5, 3)),
}

# Ops whose batched call intentionally differs from vmap over examples:
# training batch norm couples the batch, a fixed dropout key draws one mask for all.
NOT_PER_EXAMPLE = {"dropout", "batch_norm_train"}
