"""oneDNN's convolutions inside XLA:CPU programs: the ``"onednn"`` conv strategy.

XLA:CPU's own convolution runs ResNet-style 3x3 convs slower, forward and above all for the kernel
gradient, than oneDNN, the library PyTorch's CPU convolutions come from (docs/performance.md). cnnjax calls oneDNN through XLA's foreign function interface:
``onednn_conv.cc`` beside this file is compiled once per machine, on first use (a line on stderr
says so; ``cnnjax info --build`` does it ahead of time), with the system C++ compiler against the headers of the ``onednn-devel-cpu-gomp`` wheel and JAX's FFI headers,
into ``$CNNJAX_CACHE`` (default ``~/.cache/cnnjax``). Where anything is missing (another OS or
processor, no compiler), :func:`available` says why and cnnjax keeps XLA's ops; a failed build warns
once per process and is remembered on disk, so it is not retried on every start.

The three ops (forward, input gradient, kernel gradient) are JAX primitives, each bilinear, whose
derivatives are each other, so ``grad``, ``jvp``, ``linear_transpose`` and derivatives of any
order work as for ``lax.conv_general_dilated``, and so does ``vmap``.
Only float32 convs without input dilation run this way (any ``groups``, depthwise included).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir, xla

from cnnjax.functional.utils import out_size

_HERE = Path(__file__).parent
#: compiled together into one library; the header is theirs
_SOURCES = (_HERE / "onednn_conv.cc", _HERE / "onednn_batch_norm.cc", _HERE / "onednn_max_pool.cc")
_HEADER = _HERE / "onednn_common.h"
#: A conv of fewer multiply-adds (batch included) runs on one thread: XLA runs independent ops on its two
#: threads at once, and OpenMP teams on each stall them (docs/performance.md, "One thread for small convs").
PARALLEL_MACS = 50_000_000

_TARGETS = {"conv": "CnnjaxOnednnConv", "input_grad": "CnnjaxOnednnConvInputGrad",
            "kernel_grad": "CnnjaxOnednnConvKernelGrad"}
#: every FFI target the library defines: the convolutions', batch norm's (:mod:`.onednn_batch_norm`) and max
#: pooling's (:mod:`.onednn_max_pool`)
_ALL_TARGETS = (*_TARGETS.values(), "CnnjaxOnednnBatchNorm", "CnnjaxOnednnBatchNormGrad", "CnnjaxOnednnMaxPool",
                "CnnjaxOnednnMaxPoolGrad")


class OnednnUnavailable(RuntimeError):
    """oneDNN's convolutions cannot run here; the message says why."""


def available() -> bool:
    """Whether the ``"onednn"`` conv strategy can run: on the CPU backend, with the library built and loaded."""
    return jax.default_backend() == "cpu" and _load() is None


def unavailable_reason() -> str | None:
    """Why :func:`available` is false (``None`` when it is true)."""
    if jax.default_backend() != "cpu":
        return f"oneDNN kernels run on the CPU backend only; the default backend is {jax.default_backend()!r}"
    return _load()


def _wheel_dir(dist: str, name: str) -> Path:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise OnednnUnavailable(f"the {dist!r} package is not installed (pip install {dist})") from None
    for f in files:
        if f.name == name:
            return Path(f.locate()).resolve().parent
    raise OnednnUnavailable(f"the {dist!r} package has no {name}")


def _cache_dir() -> Path:
    root = os.environ.get("CNNJAX_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnjax"
    return Path(root)


#: Written beside the library when a build fails, holding the reason: later processes read it instead of rebuilding.
FAILED = "build-failed.txt"
#: What to do about a failed build, said with its reason.
FIX = "install a C++ compiler (e.g. apt-get install g++) or set CXX to one, then run `cnnjax info --build`"


class BuildFailed(OnednnUnavailable):
    """The C++ bridge could not be compiled; remembered on disk (:data:`FAILED`) under the build's key."""


def _inputs() -> tuple[Path, Path, str]:
    """``(include dir, lib dir, key)``; the key hashes the sources and the versions the library is built against."""
    include = _wheel_dir("onednn-devel-cpu-gomp", "dnnl.hpp")
    include = include.parent if include.name == "dnnl" else include  # .../include/oneapi/dnnl -> .../include
    include = include.parent if include.name == "oneapi" else include
    lib = _wheel_dir("onednn-cpu-gomp", "libdnnl.so")
    sources = [f.read_bytes() for f in (*_SOURCES, _HEADER)]
    key = hashlib.sha256(b"|".join([*sources, jax.__version__.encode(), importlib.metadata.version("jaxlib").encode(),
                                    importlib.metadata.version("onednn-cpu-gomp").encode()])).hexdigest()[:16]
    return include, lib, key


def build_dir() -> Path:
    """Where this installation's library is (or will be) built: ``$CNNJAX_CACHE/onednn-<key>``."""
    return _cache_dir() / f"onednn-{_inputs()[2]}"


def build(force: bool = False) -> Path:
    """Compile the bridge once per machine (a message says so) and return the library's path.

    A failed build raises :class:`BuildFailed` and is remembered in :data:`FAILED`, so later processes fail at
    once with the same reason; ``force=True`` (``cnnjax info --build``) forgets that and tries again.
    """
    include, lib, key = _inputs()
    out = _cache_dir() / f"onednn-{key}" / "libcnnjax_onednn.so"
    failed = out.parent / FAILED
    if out.exists():
        return out
    if failed.exists() and not force:
        raise BuildFailed(failed.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    failed.unlink(missing_ok=True)
    cxx = os.environ.get("CXX", "c++")
    print(f"cnnjax: compiling the oneDNN CPU kernels with {cxx} (once per installation, about half a minute) "
          f"into {out.parent}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # built aside, then renamed: two processes may build at once
        part = Path(tmp) / out.name
        cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w", *map(str, _SOURCES), f"-I{jax.ffi.include_dir()}",
               f"-I{include}", f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}", "-o", str(part)]
        reason = None
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                reason = f"compiling {', '.join(f.name for f in _SOURCES)} with {cxx} failed: {done.stderr[-2000:].strip()}"
        except (OSError, subprocess.TimeoutExpired) as e:
            reason = f"could not run the C++ compiler {cxx!r} ({e})"
        if reason is not None:
            failed.write_text(reason)
            raise BuildFailed(reason)
        os.replace(part, out)
    return out


@functools.lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL | None, str | None]:
    """Build (once per machine) and register the FFI targets: ``(library, None)``, or ``(None, why not)``.

    A failed build or load warns once per process, with the reason and the fix; a platform the wheels do not
    exist for (the packages are absent) stays quiet: XLA's ops are the plan there.
    """
    try:
        library = ctypes.cdll.LoadLibrary(str(build()))
    except BuildFailed as e:
        _warn(str(e), f"(remembered in {build_dir() / FAILED}; {FIX})")
        return None, str(e)
    except OnednnUnavailable as e:
        return None, str(e)
    except OSError as e:
        reason = f"could not load the compiled oneDNN library: {e}"
        _warn(reason, "(delete it to rebuild, or run `cnnjax info --build`)")
        return None, reason
    for target in _ALL_TARGETS:
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, target)), platform="cpu")
    return library, None


def _warn(reason: str, fix: str) -> None:
    warnings.warn(f"cnnjax: the oneDNN CPU kernels are unavailable, so XLA's own ops run instead (the same "
                  f"results, slower): {reason} {fix}", RuntimeWarning, stacklevel=2)


def _load() -> str | None:
    """Why the library cannot be built or loaded, else ``None``."""
    return _library()[1]


def library() -> ctypes.CDLL:
    """The loaded library, for its plain C functions; raises :class:`OnednnUnavailable` where it cannot load."""
    lib, reason = _library()
    if lib is None:
        raise OnednnUnavailable(reason)
    return lib


def _geometry_attrs(strides, dilation, pads, threads, groups, **_):
    return {"groups": np.int64(groups), "strides": np.asarray(strides, np.int64), "dilation": np.asarray(dilation, np.int64),
            "pad_lo": np.asarray([p[0] for p in pads], np.int64), "pad_hi": np.asarray([p[1] for p in pads], np.int64),
            "threads": np.int64(threads)}


def _make(name: str) -> Primitive:
    p = Primitive(f"onednn_{name}")
    p.def_impl(functools.partial(xla.apply_primitive, p))
    lowering = jax.ffi.ffi_lowering(_TARGETS[name])
    mlir.register_lowering(p, lambda ctx, *args, **params: lowering(ctx, *args, **_geometry_attrs(**params)),
                           platform="cpu")
    return p


_conv_p, _input_grad_p, _kernel_grad_p = (_make(n) for n in _TARGETS)


def _out_shape(x_shape, w_shape, strides, dilation, pads, **_):
    n = len(strides)
    spatial = [out_size(i, lo, hi, k, s, d) for i, k, s, d, (lo, hi) in zip(x_shape[1:-1], w_shape[:n], strides, dilation, pads)]
    return (x_shape[0], *spatial, w_shape[-1])


def _aval(shape, like):
    return jax.core.ShapedArray(tuple(shape), like.dtype)


_conv_p.def_abstract_eval(lambda x, w, **g: _aval(_out_shape(x.shape, w.shape, **g), x))
_input_grad_p.def_abstract_eval(lambda dy, w, *, x_shape, **g: _aval(x_shape, dy))
_kernel_grad_p.def_abstract_eval(lambda x, dy, *, w_shape, **g: _aval(w_shape, x))


def conv(x, w, strides, dilation, pads, groups=1):
    """oneDNN's ``(N, *spatial, C_in)`` x ``(*k, C_in / groups, C_out)`` -> ``(N, *out, C_out)`` float32 convolution.

    ``strides`` and ``dilation`` are per spatial dim, ``pads`` a ``(lo, hi)`` pair per spatial dim
    (explicit, non-negative). The same function as ``lax.conv_general_dilated`` with cnnjax's dimension
    numbers and ``feature_group_count=groups``. Raises :class:`OnednnUnavailable` where :func:`available`
    is false.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise OnednnUnavailable(reason)
    geometry = _geometry(strides, dilation, pads, groups)
    macs = math.prod(_out_shape(x.shape, w.shape, **geometry)[:-1]) * math.prod(w.shape)
    return _conv_p.bind(x, w, **geometry, threads=_threads(macs))


def conv_input_grad(dy, w, x_shape, strides, dilation, pads, groups=1):
    """The transpose of :func:`conv` in its input: ``(N, *out, C_out)`` x ``(*k, C_in / groups, C_out)`` ->
    ``x_shape`` ``(N, *spatial, C_in)``, oneDNN's backward-data convolution.

    It is a transposed convolution (``conv_transpose``) of ``dy``; ``x_shape`` picks the output size among
    those ``conv`` maps to ``dy``'s. Differentiable to any order, as :func:`conv` is.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise OnednnUnavailable(reason)
    geometry = _geometry(strides, dilation, pads, groups)
    if _out_shape(x_shape, w.shape, **geometry) != tuple(dy.shape):
        raise ValueError(f"conv_input_grad: a conv of x_shape={tuple(x_shape)} with w.shape={tuple(w.shape)} and "
                         f"{geometry} gives {_out_shape(x_shape, w.shape, **geometry)}, not dy.shape={tuple(dy.shape)}")
    macs = math.prod(dy.shape[:-1]) * math.prod(w.shape)
    return _input_grad_p.bind(dy, w, x_shape=tuple(map(int, x_shape)), **geometry, threads=_threads(macs))


def _geometry(strides, dilation, pads, groups):
    return {"strides": tuple(map(int, strides)), "dilation": tuple(map(int, dilation)),
            "pads": tuple((int(lo), int(hi)) for lo, hi in pads), "groups": int(groups)}


def _threads(macs: int) -> int:
    return 0 if macs >= PARALLEL_MACS else 1


# Each op is bilinear and its transposes are the other two: y = conv(x, w), dx = input_grad(dy, w),
# dw = kernel_grad(x, dy). The argument being transposed is a placeholder with only an .aval.
ad.defbilinear(_conv_p,
               lambda ct, x, w, **g: _input_grad_p.bind(ct, w, x_shape=x.aval.shape, **g),
               lambda ct, x, w, **g: _kernel_grad_p.bind(x, ct, w_shape=w.aval.shape, **g))
ad.defbilinear(_input_grad_p,
               lambda ct, dy, w, *, x_shape, **g: _conv_p.bind(ct, w, **g),
               lambda ct, dy, w, *, x_shape, **g: _kernel_grad_p.bind(ct, dy, w_shape=w.aval.shape, **g))
ad.defbilinear(_kernel_grad_p,
               lambda ct, x, dy, *, w_shape, **g: _input_grad_p.bind(dy, ct, x_shape=x.aval.shape, **g),
               lambda ct, x, dy, *, w_shape, **g: _conv_p.bind(x, ct, **g))


def _fold(a, axis):
    """``a`` with its vmapped ``axis`` merged into the batch axis 0: ``(B, N, ...)`` -> ``(B * N, ...)``."""
    a = jnp.moveaxis(a, axis, 0)
    return a.reshape(-1, *a.shape[2:])


def _batched(p, folds):
    # A kernel shared by every vmapped member (per-example gradients, vmapped data): the members join
    # the batch axis, one oneDNN call. Otherwise (ensembles: a kernel per member) one call per member.
    def rule(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        if folds(dims):
            i = next(i for i, d in enumerate(dims) if d is not None)
            args = list(args)
            n = args[i].shape[1 if dims[i] == 0 else 0]  # the per-member batch size
            args[i] = _fold(args[i], dims[i])
            if "x_shape" in params:
                params = {**params, "x_shape": (size * params["x_shape"][0], *params["x_shape"][1:])}
            out = p.bind(*args, **params)
            return out.reshape(size, n, *out.shape[1:]), 0
        take = lambda a, d, m: a if d is None else jax.lax.index_in_dim(a, m, d, keepdims=False)  # noqa: E731
        return jnp.stack([p.bind(*(take(a, d, m) for a, d in zip(args, dims)), **params)
                                for m in range(size)]), 0
    return rule


batching.primitive_batchers[_conv_p] = _batched(_conv_p, lambda dims: dims[1] is None)
batching.primitive_batchers[_input_grad_p] = _batched(_input_grad_p, lambda dims: dims[1] is None)
batching.primitive_batchers[_kernel_grad_p] = _batched(_kernel_grad_p, lambda dims: False)
