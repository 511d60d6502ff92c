"""``cnnjax info``: versions, devices, the backends' status with the reason, and which implementation each op
family runs on this machine."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import jax
import jax.numpy as jnp

from cnnjax.functional import dispatch

#: (op family, op, geometry) asked of the dispatch point: typical cases of each family
PROBES = [
    ("conv 3x3, 64 channels, float32", "conv", dict(c_in=64, kernel=(3, 3), strides=(1, 1), groups=1,
                                                    input_dilation=(1, 1), out=(32, 32), dtype=jnp.dtype("float32"))),
    ("conv 3x3, first layer (3 channels)", "conv", dict(c_in=3, kernel=(3, 3), strides=(1, 1), groups=1,
                                                       input_dilation=(1, 1), out=(32, 32), dtype=jnp.dtype("float32"))),
    ("conv 3x3, 64 channels, bfloat16", "conv", dict(c_in=64, kernel=(3, 3), strides=(1, 1), groups=1,
                                                     input_dilation=(1, 1), out=(32, 32), dtype=jnp.dtype("bfloat16"))),
    ("depthwise conv 3x3", "conv", dict(c_in=64, kernel=(3, 3), strides=(1, 1), groups=64, input_dilation=(1, 1),
                                        out=(32, 32), dtype=jnp.dtype("float32"))),
    ("conv_transpose 2x2 stride 2", "conv_transpose", dict(kernel=(2, 2), strides=(2, 2), padding=(0, 0),
                                                           output_padding=(0, 0), dilation=(1, 1), groups=1,
                                                           dtype=jnp.dtype("float32"))),
    ("max_pool 2x2", "max_pool", dict(window=(2, 2), strides=(2, 2), pads=((0, 0), (0, 0)), dilation=(1, 1),
                                      spatial=(32, 32), dtype=jnp.dtype("float32"))),
    ("max_pool 3x3 stride 2 (ResNet stem)", "max_pool", dict(window=(3, 3), strides=(2, 2), pads=((1, 1), (1, 1)),
                                                             dilation=(1, 1), spatial=(112, 112),
                                                             dtype=jnp.dtype("float32"))),
    ("batch_norm (training)", "batch_norm", dict(shape=(128, 32, 32, 64), dtype=jnp.dtype("float32"))),
]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report(build: bool = False) -> str:
    """The text ``cnnjax info`` prints; ``build=True`` compiles the CPU backend's oneDNN bridge first (forgetting an
    earlier failure), printing what happened."""
    import cnnjax
    from cnnjax.backends.cpu import onednn

    lines = []
    if build:
        try:
            lines.append(f"built: {onednn.build(force=True)}")
        except onednn.OnednnUnavailable as e:
            lines.append(f"build failed: {e}")
    lines.append(f"cnnjax {cnnjax.__version__}, python {platform.python_version()} ({sys.platform}, {platform.machine()})")
    lines.append("versions: " + ", ".join(f"{d} {_version(d)}" for d in
                                         ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "onednn-cpu-gomp")))
    lines.append(f"devices: {', '.join(map(str, jax.devices()))} (default backend: {jax.default_backend()})")
    reason = onednn.unavailable_reason()
    if reason is None:
        try:
            where = str(onednn.build_dir())
        except onednn.OnednnUnavailable:
            where = "?"
        lines.append(f"cpu backend, oneDNN kernels: available (built in {where})")
    else:
        lines.append(f"cpu backend, oneDNN kernels: unavailable: {reason}")
    lines.append("implementation per op family (cnnjax.functional.dispatch):")
    width = max(len(label) for label, _, _ in PROBES)
    for label, op, geometry in PROBES:
        lines.append(f"  {label.ljust(width)}  {dispatch.choose(op, fn='cnnjax info', **geometry)}")
    options = dispatch.compiler_options()
    lines.append(f"XLA compiler options for cnnjax's steps: {options or 'none'}")
    return "\n".join(lines)
