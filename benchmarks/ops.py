"""Per-op timings (forward + backward, float32) over a grid of shapes: cnnjax.functional vs torch.nn.functional.

On a GPU backend torch runs on CUDA too (when its build has CUDA).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import jax_sync, timeit
from cnnjax import functional as F
from cnnjax.train.step import jit_step

# (label, x shape (channels-last), kernel shape (*k, C_in/groups, C_out), stride, padding, groups)
CONVS = [
    ("conv 1->32 3x3, 28x28 (first layer)", (128, 28, 28, 1), (3, 3, 1, 32), 1, 1, 1),
    ("conv 3->16 3x3, 32x32 (CIFAR stem)", (128, 32, 32, 3), (3, 3, 3, 16), 1, 1, 1),
    ("conv 3->64 7x7 stride 2, 224x224 (ImageNet stem)", (8, 224, 224, 3), (7, 7, 3, 64), 2, 3, 1),
    ("conv 6->16 3x3, 14x14 (SimpleCNN)", (128, 14, 14, 6), (3, 3, 6, 16), 1, 1, 1),
    ("conv 16->16 3x3, 32x32", (128, 32, 32, 16), (3, 3, 16, 16), 1, 1, 1),
    ("conv 64->64 3x3, 32x32", (64, 32, 32, 64), (3, 3, 64, 64), 1, 1, 1),
    ("conv 64->64 3x3, 8x8", (128, 8, 8, 64), (3, 3, 64, 64), 1, 1, 1),
    ("conv 16->32 3x3 stride 2", (128, 32, 32, 16), (3, 3, 16, 32), 2, 1, 1),
    ("conv 256->64 1x1, 14x14", (32, 14, 14, 256), (1, 1, 256, 64), 1, 0, 1),
    ("conv 256->256 3x3, 2x2 (ResNet-18 on 32x32)", (128, 2, 2, 256), (3, 3, 256, 256), 1, 1, 1),
    ("conv1d 1->15 k3 s2, L=40", (100, 40, 1), (3, 1, 15), 2, 0, 1),
    ("depthwise 64ch 3x3, 32x32", (64, 32, 32, 64), (3, 3, 1, 64), 1, 1, 64),
]


def _torch_conv(torch, tf, xs, ws, stride, pad, groups, dev):
    n = len(ws) - 2
    fmt = torch.channels_last if n == 2 else torch.contiguous_format
    x = torch.randn(xs[0], xs[-1], *xs[1:-1], device=dev).contiguous(memory_format=fmt).requires_grad_()
    w = (0.1 * torch.randn(ws[-1], ws[-2], *ws[:-2], device=dev)).contiguous(memory_format=fmt).requires_grad_()
    conv = tf.conv2d if n == 2 else tf.conv1d

    return lambda: _torch_backward(torch, conv(x, w, stride=stride, padding=pad, groups=groups))


_TORCH_COTANGENTS: dict = {}


def _torch_backward(torch, y):
    """Backward with a fixed random output gradient, as the JAX side gets (a gradient of ones would let
    XLA simplify products with it away)."""
    key = (tuple(y.shape), y.device)
    if key not in _TORCH_COTANGENTS:
        fmt = torch.channels_last if y.ndim == 4 else torch.contiguous_format
        _TORCH_COTANGENTS[key] = torch.randn(y.shape, device=y.device).contiguous(memory_format=fmt)
    y.backward(_TORCH_COTANGENTS[key])
    return y


def _jax_fwd_bwd(f: Callable, *args, argnums: tuple[int, ...] | None = None) -> Callable:
    """Forward + backward of ``f`` against a fixed random output gradient, for ``args[argnums]`` (default: all).

    Every array is an argument of the jitted function: a captured one would be a constant,
    which XLA may fold, with the whole gradient when it does not depend on the rest. It compiles
    as cnnjax's training steps do (:func:`cnnjax.train.step.jit_step`)."""
    out = jax.eval_shape(f, *args)
    ct = jnp.asarray(np.random.default_rng(1).normal(size=out.shape), out.dtype)
    argnums = tuple(range(len(args))) if argnums is None else argnums
    g = jit_step(jax.grad(lambda *a: jnp.sum(f(*a[:-1]) * a[-1]), argnums=argnums))
    args = (*args, ct)
    return lambda: g(*args)


def op_rows(quick: bool = False, repeats: int = 5) -> list[dict]:
    try:
        import torch
        import torch.nn.functional as tf
    except ImportError:
        torch = tf = None
    gpu = torch is not None and jax.default_backend() == "gpu" and torch.cuda.is_available()
    dev = "cuda" if gpu else "cpu"
    torch_sync = (lambda _: torch.cuda.synchronize()) if gpu else (lambda _: None)
    rng = np.random.default_rng(0)
    rows = []
    cases = []
    for label, xs, ws, stride, pad, groups in CONVS[:3] if quick else CONVS:
        n = len(ws) - 2
        x, w = jnp.asarray(rng.normal(size=xs), jnp.float32), jnp.asarray(0.1 * rng.normal(size=ws), jnp.float32)
        out = F.conv_output_size(xs[1:-1], ws[:n], stride=stride, padding=pad)
        flops = 3 * 2 * np.prod(out) * xs[0] * np.prod(ws[:-1]) * ws[-1]  # forward + two backward products
        jx = _jax_fwd_bwd(lambda x, w, s=(stride,) * n, p=pad, g=groups: F.conv(x, w, stride=s, padding=p, groups=g), x, w)
        tt = _torch_conv(torch, tf, xs, ws, stride, pad, groups, dev) if torch else None
        cases.append((label, flops, jx, tt))
    # (label, function, torch's, (N, H, C), window, stride, padding)
    pools = [("max pool 2x2, 64ch 32x32", F.max_pool, "max_pool2d", (64, 32, 64), 2, 2, 0),
             ("avg pool 2x2, 64ch 32x32", F.avg_pool, "avg_pool2d", (64, 32, 64), 2, 2, 0),
             ("max pool 3x3 s2 p1, 64ch 112x112 (ResNet stem)", F.max_pool, "max_pool2d", (8, 112, 64), 3, 2, 1)]
    for label, fn, tname, (n, h, c), k, st, pad in pools[:1] if quick else pools:
        x = jnp.asarray(rng.normal(size=(n, h, h, c)), jnp.float32)
        jx = _jax_fwd_bwd(lambda x, fn=fn, k=k, st=st, pad=pad: fn(x, (k, k), st, pad), x)
        tt = None
        if torch:
            tx_ = torch.randn(n, c, h, h, device=dev).contiguous(memory_format=torch.channels_last).requires_grad_()
            tt = (lambda tx_=tx_, tname=tname, k=k, st=st, pad=pad:  # noqa: E731
                  _torch_backward(torch, getattr(tf, tname)(tx_, k, st, pad)))
        cases.append((label, None, jx, tt))
    if not quick:
        x = jnp.asarray(rng.normal(size=(64, 32, 32, 64)), jnp.float32)
        scale, bias, stats = jnp.ones(64), jnp.zeros(64), F.init_batch_norm_stats(64)
        jx = _jax_fwd_bwd(lambda x, s, b: F.batch_norm(x, s, b, stats, training=True)[0], x, scale, bias)
        tt = None
        if torch:
            tx_ = torch.randn(64, 64, 32, 32, device=dev).contiguous(memory_format=torch.channels_last).requires_grad_()
            ts, tb = torch.ones(64, device=dev, requires_grad=True), torch.zeros(64, device=dev, requires_grad=True)
            rm, rv = torch.zeros(64, device=dev), torch.ones(64, device=dev)
            # arguments bound now: the names are reused below, and a closure would time the later tensors
            tt = (lambda tx_=tx_, rm=rm, rv=rv, ts=ts, tb=tb:  # noqa: E731
                  _torch_backward(torch, tf.batch_norm(tx_, rm, rv, ts, tb, training=True)))
        cases.append(("batch norm (training), 64ch 32x32", None, jx, tt))
        # the U-Net's up-convolution, and DCGAN's / FCN's overlapping one
        for k, pad in ((2, 0), (4, 1)):
            x = jnp.asarray(rng.normal(size=(64, 16, 16, 64)), jnp.float32)
            w = jnp.asarray(0.1 * rng.normal(size=(k, k, 64, 32)), jnp.float32)
            jx = _jax_fwd_bwd(lambda x, w, p=pad: F.conv_transpose(x, w, stride=2, padding=p), x, w)
            tt = None
            if torch:
                tx_ = torch.randn(64, 64, 16, 16, device=dev).contiguous(memory_format=torch.channels_last).requires_grad_()
                tw = (0.1 * torch.randn(64, 32, k, k, device=dev)).requires_grad_()
                tt = (lambda tx_=tx_, tw=tw, p=pad:  # noqa: E731
                      _torch_backward(torch, tf.conv_transpose2d(tx_, tw, stride=2, padding=p)))
            label = f"conv_transpose 64->32 {k}x{k} s2" + (f" p{pad}" if pad else "") + ", 16x16"
            cases.append((label, 3 * 2 * 64 * 16 * 16 * k * k * 64 * 32, jx, tt))
    for label, flops, jx, tt in cases:
        for fw, run, sync in (("cnnjax", jx, jax_sync), ("torch", tt, torch_sync)):
            if run is None:
                continue
            r = timeit(run, sync, repeats=repeats)
            rows.append({"workload": label, "framework": fw, "flops": flops, **r})
    return rows
