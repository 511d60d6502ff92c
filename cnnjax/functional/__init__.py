"""Pure functional CNN ops on channels-last arrays ``(*batch, *spatial, C)``.

No state and no Flax: every function jits, vmaps and differentiates. The kernel's
rank (conv) or the length of a window/size tuple (pooling, resizing) fixes the number
of spatial dims, so 1-D, 2-D and 3-D go through the same functions. PyTorch's dimension-specific spellings
(``conv2d``, ``max_pool2d``, ``pad2d``, ...) fix the rank, so bare ints work as they do there.

Each op's body is its ``lax`` maths; faster implementations (the CPU backend's native kernels,
say) are asked for at one point, :mod:`cnnjax.functional.dispatch`, and live in
:mod:`cnnjax.backends`.
"""

from cnnjax.functional import filters
from cnnjax.functional.antialias import aps_pool, binomial_filter, binomial_taps, blur_pool, polyphase_components
from cnnjax.functional.conv import (
    conv,
    conv_output_size,
    conv_param_count,
    conv_transpose,
    conv_transpose_output_size,
    convolve,
)
from cnnjax.functional import dispatch, utils
from cnnjax.functional.dispatch import compiler_options, conv_strategy
from cnnjax.functional.dropout import drop_path, dropout
from cnnjax.functional.fixed_dims import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    conv1d,
    conv2d,
    conv3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    pad1d,
    pad2d,
    pad3d,
)
from cnnjax.functional.group import (
    act_regular,
    group_batch_norm,
    group_conv,
    group_order,
    group_pool,
    lifting_conv,
    transform_plane,
)
from cnnjax.functional.norm import (
    batch_norm,
    group_norm,
    init_batch_norm_stats,
    instance_norm,
    layer_norm,
    local_response_norm,
)
from cnnjax.functional.padding import pad
from cnnjax.functional import steerable
from cnnjax.functional.resample import affine_grid, grid_sample, rotate
from cnnjax.functional.shuffle import channel_shuffle
from cnnjax.functional.pool import (
    adaptive_avg_pool,
    adaptive_max_pool,
    avg_pool,
    global_avg_pool,
    global_max_pool,
    lp_pool,
    max_pool,
    max_pool_with_indices,
    max_unpool,
)
from cnnjax.functional.unfold import fold, unfold
from cnnjax.functional.upsample import pixel_shuffle, pixel_unshuffle, resize, upsample_nearest

__all__ = [
    "act_regular",
    "adaptive_avg_pool",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool",
    "affine_grid",
    "aps_pool",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "batch_norm",
    "binomial_filter",
    "binomial_taps",
    "blur_pool",
    "channel_shuffle",
    "compiler_options",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_output_size",
    "conv_param_count",
    "conv_strategy",
    "conv_transpose",
    "conv_transpose_output_size",
    "convolve",
    "dispatch",
    "drop_path",
    "dropout",
    "filters",
    "fold",
    "global_avg_pool",
    "global_max_pool",
    "grid_sample",
    "group_batch_norm",
    "group_conv",
    "group_norm",
    "group_order",
    "group_pool",
    "init_batch_norm_stats",
    "instance_norm",
    "layer_norm",
    "lifting_conv",
    "local_response_norm",
    "lp_pool",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_pool_with_indices",
    "max_unpool",
    "pad",
    "pad1d",
    "pad2d",
    "pad3d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "polyphase_components",
    "resize",
    "rotate",
    "steerable",
    "transform_plane",
    "unfold",
    "upsample_nearest",
    "utils",
]
