"""Independent numpy references for the functional ops: explicit loops and sliding_window_view.

Nothing here imports cnnjax, so a shared bug cannot hide on both sides of a comparison.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NP_MODE = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def pad(x, pads, mode="zeros", value=0.0):
    """Pad the spatial dims of ``(N, *spatial, C)``."""
    width = [(0, 0)] + list(pads) + [(0, 0)]
    if mode == "zeros":
        return np.pad(x, width, constant_values=value)
    return np.pad(x, width, mode=NP_MODE[mode])


def dilate_input(x, factors):
    """Insert ``f - 1`` zeros between the spatial elements of ``(N, *spatial, C)``."""
    n = len(factors)
    shape = [x.shape[0]] + [(s - 1) * f + 1 for s, f in zip(x.shape[1 : n + 1], factors)] + [x.shape[-1]]
    out = np.zeros(shape, x.dtype)
    out[(slice(None),) + tuple(slice(None, None, f) for f in factors)] = x
    return out


def conv_loops(x, w, stride, pads, dilation, groups=1, mode="zeros"):
    """Cross-correlation by explicit loops over output positions and groups. ``x``: ``(N, *s, C)``."""
    n = w.ndim - 2
    xp = pad(x.astype(np.float64), pads, mode)
    k = w.shape[:n]
    cin_g, cout = w.shape[-2], w.shape[-1]
    cout_g = cout // groups
    out = [(xp.shape[1 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    y = np.zeros((x.shape[0], *out, cout))
    for pos in itertools.product(*(range(o) for o in out)):
        window = tuple(
            slice(p * s, p * s + d * (kk - 1) + 1, d) for p, s, d, kk in zip(pos, stride, dilation, k)
        )
        patch = xp[(slice(None),) + window]  # (N, *k, C)
        for g in range(groups):
            pg = patch[..., g * cin_g : (g + 1) * cin_g]
            wg = w[..., g * cout_g : (g + 1) * cout_g].astype(np.float64)
            y[(slice(None),) + pos + (slice(g * cout_g, (g + 1) * cout_g),)] = np.tensordot(
                pg, wg, axes=(list(range(1, n + 2)), list(range(n + 1)))
            )
    return y


def windows(x, window, stride, pads, dilation, value=0.0, mode="zeros"):
    """``(N, *out, C, *window)`` views of the padded input via sliding_window_view."""
    n = len(window)
    xp = pad(x, pads, mode, value)
    eff = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    v = sliding_window_view(xp, eff, axis=tuple(range(1, n + 1)))
    v = v[(slice(None),) + tuple(slice(None, None, s) for s in stride)]
    return v[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)]


def pool(x, window, stride, pads, dilation, reducer, value):
    n = len(window)
    v = windows(x, window, stride, pads, dilation, value)
    return reducer(v, axis=tuple(range(-n, 0)))


def conv_transpose_scatter(x, w, stride, padding, output_padding, dilation):
    """Transposed conv by scattering ``x[i] * w`` (groups=1). ``w``: ``(*k, C_in, C_out)``."""
    n = w.ndim - 2
    k = w.shape[:n]
    full = [(i - 1) * s + d * (kk - 1) + 1 + op for i, s, d, kk, op in zip(x.shape[1:-1], stride, dilation, k, output_padding)]
    y = np.zeros((x.shape[0], *full, w.shape[-1]))
    for pos in itertools.product(*(range(i) for i in x.shape[1:-1])):
        for off in itertools.product(*(range(kk) for kk in k)):
            o = tuple(p * s + q * d for p, s, q, d in zip(pos, stride, off, dilation))
            y[(slice(None),) + o] += x[(slice(None),) + pos] @ w[off]
    crop = tuple(slice(p, f - p) for p, f in zip(padding, full))
    return y[(slice(None),) + crop]


def channels_first(x):
    """``(N, *spatial, C) -> (N, C, *spatial)``, PyTorch's layout."""
    return np.moveaxis(np.asarray(x), -1, 1)


def channels_last(x):
    return np.moveaxis(np.asarray(x), 1, -1)


def conv_kernel_to_torch(w):
    """Conv kernel ``(*k, I/g, O) -> (O, I/g, *k)``."""
    w = np.asarray(w)
    n = w.ndim - 2
    return np.ascontiguousarray(w.transpose(n + 1, n, *range(n)))


def transpose_kernel_to_torch(w):
    """Transposed-conv kernel ``(*k, I, O/g) -> (I, O/g, *k)``."""
    w = np.asarray(w)
    n = w.ndim - 2
    return np.ascontiguousarray(w.transpose(n, n + 1, *range(n)))
