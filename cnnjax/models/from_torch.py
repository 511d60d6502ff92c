"""Port a PyTorch CNN, forward pass and weights, to a cnnjax module: :func:`from_torch`.

``torch.fx`` traces the module's ``forward`` into a graph of layer calls, functions and tensor methods.
Each layer becomes the cnnjax layer with its weights converted (conv kernels to ``(*k, C_in, C_out)``,
linear weights transposed); the graph becomes a static program that :class:`TorchPort` runs on
channels-last arrays. Every value carries its layout: conv, pool and norm layers work channels-last,
and a ``view``/``flatten`` of a feature map first puts it back in PyTorch's ``(N, C, H, W)`` order, so
the ``Linear`` after it sees the features in the order its weights were trained on.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.nn import init

__all__ = ["TorchPort", "from_torch"]


class Ref(NamedTuple):
    """An argument that is the value of an earlier step."""

    name: str


class Step(NamedTuple):
    """One node of the traced graph: ``kind`` is ``input``, ``layer``, ``op`` or ``output``."""

    name: str
    kind: str
    target: str
    args: tuple
    kwargs: tuple


# Layouts: "cl" is channels-last (*batch, *spatial, C) standing for PyTorch's (N, C, *spatial); "torch" is
# PyTorch's own order. Arrays of rank <= 2 are the same in both and always "torch".
CL, TORCH = "cl", "torch"


def _to_torch(v: jax.Array, layout: str) -> jax.Array:
    return jnp.moveaxis(v, -1, 1) if layout == CL else v


def _to_cl(v: jax.Array, layout: str) -> jax.Array:
    return jnp.moveaxis(v, 1, -1) if layout == TORCH and v.ndim >= 3 else v


def _layout(v: Any, layout: str) -> str:
    return layout if getattr(v, "ndim", 0) >= 3 else TORCH


def _torch_dim(dim: int, ndim: int, layout: str) -> int:
    """PyTorch's axis ``dim`` of an ``(N, C, *spatial)`` tensor, as an axis of its channels-last array."""
    dim = dim + ndim if dim < 0 else dim
    if layout != CL:
        return dim
    return 0 if dim == 0 else ndim - 1 if dim == 1 else dim - 1


def _act(fn):
    return lambda x, *a, **k: fn(x)


# Functions and tensor methods that act elementwise: the layout passes through.
_ELEMENTWISE = {
    "relu": _act(jax.nn.relu), "relu6": _act(jax.nn.relu6), "sigmoid": _act(jax.nn.sigmoid), "tanh": _act(jnp.tanh),
    "silu": _act(jax.nn.silu), "hardswish": _act(jax.nn.hard_swish), "hardsigmoid": _act(jax.nn.hard_sigmoid),
    "gelu": lambda x, approximate="none": jax.nn.gelu(x, approximate=approximate == "tanh"),
    "elu": lambda x, alpha=1.0, inplace=False: jax.nn.elu(x, alpha),
    "leaky_relu": lambda x, negative_slope=0.01, inplace=False: jax.nn.leaky_relu(x, negative_slope),
    "contiguous": lambda x, *a, **k: x, "dropout_eval": lambda x, *a, **k: x,
}

_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv}


def _function_name(torch: Any, fn: Any) -> str | None:
    """The program's name for a function ``forward`` calls, or None when it has none."""
    tf = torch.nn.functional
    table = {torch.relu: "relu", tf.relu: "relu", tf.relu6: "relu6", torch.sigmoid: "sigmoid", tf.sigmoid: "sigmoid",
             torch.tanh: "tanh", tf.tanh: "tanh", tf.silu: "silu", tf.gelu: "gelu", tf.elu: "elu",
             tf.leaky_relu: "leaky_relu", tf.hardswish: "hardswish", tf.hardsigmoid: "hardsigmoid",
             tf.softmax: "softmax", tf.log_softmax: "log_softmax", torch.softmax: "softmax",
             torch.log_softmax: "log_softmax", torch.flatten: "flatten", torch.cat: "cat", torch.add: "add",
             torch.mul: "mul", operator.add: "add", operator.sub: "sub", operator.mul: "mul",
             operator.truediv: "truediv", operator.getitem: "getitem", tf.dropout: "dropout", torch.mean: "mean"}
    for n in (1, 2, 3):
        table[getattr(tf, f"max_pool{n}d")] = f"max_pool{n}d"
        table[getattr(tf, f"avg_pool{n}d")] = f"avg_pool{n}d"
        table[getattr(tf, f"adaptive_avg_pool{n}d")] = f"adaptive_avg_pool{n}d"
    try:
        return table.get(fn)
    except TypeError:  # an unhashable callable
        return None


_METHODS = {"view", "reshape", "flatten", "size", "contiguous", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
            "mean", "add", "mul"}


def _convert_layer(torch: Any, name: str, m: Any, rngs: Any) -> nnx.Module | None:
    """The cnnjax layer for torch layer ``m`` (weights converted), or None for a layer it does not know."""
    tnn = torch.nn

    def array(t):
        return jnp.asarray(t.detach().cpu().numpy(), jnp.float32)

    for n in (1, 2, 3):
        if type(m) is getattr(tnn, f"Conv{n}d"):
            padding = m.padding
            if isinstance(padding, str):
                padding = {"same": "SAME", "valid": 0}[padding]
            layer = nn.Conv(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=padding,
                            padding_mode=m.padding_mode, dilation=m.dilation, groups=m.groups,
                            use_bias=m.bias is not None, rngs=rngs)
            layer.kernel[...] = jnp.moveaxis(array(m.weight), (0, 1), (-1, -2))  # (O, I, *k) -> (*k, I, O)
            if m.bias is not None:
                layer.bias[...] = array(m.bias)
            return layer
        if type(m) is getattr(tnn, f"ConvTranspose{n}d"):
            if m.padding_mode != "zeros":
                return None
            layer = nn.ConvTranspose(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                                     output_padding=m.output_padding, dilation=m.dilation, groups=m.groups,
                                     use_bias=m.bias is not None, rngs=rngs)
            layer.kernel[...] = jnp.moveaxis(array(m.weight), (0, 1), (-2, -1))  # (I, O/g, *k) -> (*k, I, O/g)
            if m.bias is not None:
                layer.bias[...] = array(m.bias)
            return layer
        if type(m) is getattr(tnn, f"BatchNorm{n}d"):
            if m.momentum is None or not m.track_running_stats:
                return None
            layer = getattr(nn, f"BatchNorm{n}d")(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine)
            if m.affine:
                layer.scale[...], layer.bias[...] = array(m.weight), array(m.bias)
            layer.mean[...], layer.var[...] = array(m.running_mean), array(m.running_var)
            return layer
        if type(m) is getattr(tnn, f"MaxPool{n}d") and not m.return_indices:
            return nn.MaxPool(_ntuple(m.kernel_size, n), m.stride and _ntuple(m.stride, n), _ntuple(m.padding, n),
                              dilation=_ntuple(m.dilation, n), ceil_mode=m.ceil_mode)
        if type(m) is getattr(tnn, f"AvgPool{n}d") and getattr(m, "divisor_override", None) is None:
            return nn.AvgPool(_ntuple(m.kernel_size, n), m.stride and _ntuple(m.stride, n), _ntuple(m.padding, n),
                              ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)
        if type(m) is getattr(tnn, f"AdaptiveAvgPool{n}d"):
            size = m.output_size
            if any(s is None for s in np.atleast_1d(np.asarray(size, dtype=object))):
                return None
            return nn.AdaptiveAvgPool(_ntuple(size, n))
    if type(m) is tnn.Linear:
        layer = nn.Linear(m.in_features, m.out_features, use_bias=m.bias is not None, rngs=rngs)
        layer.kernel[...] = array(m.weight).T
        if m.bias is not None:
            layer.bias[...] = array(m.bias)
        return layer
    if type(m) is tnn.Upsample and not isinstance(m.size, int):
        return nn.Upsample(size=m.size, scale_factor=m.scale_factor, mode=m.mode, align_corners=bool(m.align_corners),
                           recompute_scale_factor=m.recompute_scale_factor)
    if type(m) is tnn.Dropout:
        return nn.Dropout(m.p, rngs=rngs)
    for n, axes in ((1, (-2,)), (2, (-3, -2)), (3, (-4, -3, -2))):
        if type(m) is getattr(tnn, f"Dropout{n}d", None):  # whole channels: shared over the spatial axes
            return nn.Dropout(m.p, broadcast_dims=axes, rngs=rngs)
    return None


def _ntuple(v: Any, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _module_op(torch: Any, m: Any) -> tuple[str, tuple] | None:
    """A parameter-free torch layer as a program op ``(name, kwargs)``, or None."""
    tnn = torch.nn
    simple = {tnn.ReLU: "relu", tnn.ReLU6: "relu6", tnn.Sigmoid: "sigmoid", tnn.Tanh: "tanh", tnn.SiLU: "silu",
              tnn.Hardswish: "hardswish", tnn.Hardsigmoid: "hardsigmoid", tnn.Identity: "contiguous"}
    if type(m) in simple:
        return simple[type(m)], ()
    if type(m) is tnn.LeakyReLU:
        return "leaky_relu", (("negative_slope", m.negative_slope),)
    if type(m) is tnn.ELU:
        return "elu", (("alpha", m.alpha),)
    if type(m) is tnn.GELU:
        return "gelu", (("approximate", m.approximate),)
    if type(m) in (tnn.Softmax, tnn.LogSoftmax):
        if m.dim is None:
            return None
        return ("softmax" if type(m) is tnn.Softmax else "log_softmax"), (("dim", m.dim),)
    if type(m) is tnn.Flatten:
        return "flatten", (("start_dim", m.start_dim), ("end_dim", m.end_dim))
    return None


def _static(torch: Any, value: Any, where: str) -> Any:
    """An fx argument as hashable program data: node references become :class:`Ref`."""
    import torch.fx

    if isinstance(value, torch.fx.Node):
        return Ref(value.name)
    if isinstance(value, (list, tuple)):
        return tuple(_static(torch, v, where) for v in value)
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        raise ValueError(f"from_torch: {where}: dtype arguments ({value}) are not supported")
    raise ValueError(f"from_torch: {where}: cannot convert the argument {value!r} ({type(value).__name__})")


class TorchPort(nnx.Module):
    """A PyTorch module ported by :func:`from_torch`: ``(N, *spatial, C) -> logits`` (channels-last in and,
    for feature maps, out).

    ``layers`` holds the cnnjax layers under PyTorch's module paths (``layers.features.0.kernel`` for torch's
    ``features.0.weight``); ``program`` is the traced ``forward``.
    ``model.train()``/``model.eval()`` switch its BatchNorm and Dropout layers as in PyTorch.
    """

    def __init__(self, program: tuple[Step, ...], layers: dict[str, nnx.Module], source: str):
        self.program, self.source = program, source
        tree: dict = {}
        for path, layer in layers.items():  # "features.0" -> tree["features"]["0"]
            *parents, leaf = path.split(".")
            node = tree
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = layer
        as_dicts = lambda d: nnx.Dict({k: as_dicts(v) if isinstance(v, dict) else v for k, v in d.items()})  # noqa: E731
        self.layers = as_dicts(tree)

    def __call__(self, x: jax.Array) -> Any:
        env: dict[str, Any] = {}
        lay: dict[str, str] = {}

        def get(a):
            """``(value, layout)``; a tuple argument gives its values and their layouts."""
            if isinstance(a, Ref):
                return env[a.name], lay[a.name]
            if isinstance(a, tuple):
                pairs = [get(v) for v in a]
                return tuple(v for v, _ in pairs), tuple(layout for _, layout in pairs)
            return a, TORCH

        for step in self.program:
            if step.kind == "input":
                env[step.name], lay[step.name] = x, _layout(x, CL)
                continue
            if step.kind == "output":
                return get(step.args[0])[0]
            args = [get(a) for a in step.args]
            kwargs = {k: get(v)[0] for k, v in step.kwargs}
            if step.kind == "layer":
                value, layout = self._layer(step, *args[0])
            else:
                value, layout = _op(step, args, kwargs)
            env[step.name], lay[step.name] = value, _layout(value, layout)
        raise ValueError(f"TorchPort({self.source}): the traced program has no output")

    def _layer(self, step: Step, v: jax.Array, layout: str) -> tuple[jax.Array, str]:
        layer = self.layers
        for p in step.target.split("."):
            layer = layer[p]
        if isinstance(layer, (nn.Linear, nnx.Linear)):
            return layer(_to_torch(v, layout)), TORCH  # acts on PyTorch's last axis
        if isinstance(layer, nn.BatchNorm) and v.ndim == 2:
            return layer(v), TORCH
        return layer(_to_cl(v, layout)), CL


def _op(step: Step, args: list[tuple[Any, str]], kwargs: dict[str, Any]) -> tuple[Any, str]:
    """Run one function or tensor method of the program on channels-last arrays."""
    name = step.target
    (x, layout), rest = args[0], [a for a, _ in args[1:]]
    if name in _ELEMENTWISE:
        return _ELEMENTWISE[name](x, *rest, **kwargs), layout
    if name in _BINARY:
        y, y_layout = args[1]
        if getattr(x, "ndim", 0) >= 1 and getattr(y, "ndim", 0) >= 1 and layout != y_layout:
            # broadcasting pairs axes from the right, which differ between the layouts: use PyTorch's
            x, y, layout = _to_torch(x, layout), _to_torch(y, y_layout), TORCH
        elif getattr(y, "ndim", 0) >= 1:
            layout = y_layout
        return _BINARY[name](x, y), layout
    if name == "getitem":
        if isinstance(x, tuple):
            return x[rest[0]], TORCH
        return _to_torch(x, layout)[rest[0]], TORCH
    if name == "size":
        shape = (x.shape[0], x.shape[-1]) + x.shape[1:-1] if layout == CL else x.shape
        dim = rest[0] if rest else kwargs.get("dim")
        return (tuple(shape) if dim is None else shape[dim]), TORCH
    if name in ("view", "reshape"):
        shape = rest[0] if len(rest) == 1 and isinstance(rest[0], tuple) else tuple(rest)
        return _to_torch(x, layout).reshape(shape), TORCH
    if name == "flatten":
        start = rest[0] if rest else kwargs.get("start_dim", 0)
        end = rest[1] if len(rest) > 1 else kwargs.get("end_dim", -1)
        t = _to_torch(x, layout)
        start, end = start % max(t.ndim, 1), end % max(t.ndim, 1)
        return t.reshape(t.shape[:start] + (-1,) + t.shape[end + 1:]), TORCH
    if name in ("softmax", "log_softmax"):
        dim = rest[0] if rest else kwargs["dim"]
        fn = jax.nn.softmax if name == "softmax" else jax.nn.log_softmax
        return fn(x, axis=_torch_dim(dim, x.ndim, layout)), layout
    if name == "mean":
        dim = rest[0] if rest else kwargs.get("dim")
        keepdim = rest[1] if len(rest) > 1 else kwargs.get("keepdim", False)
        dims = None if dim is None else tuple(_torch_dim(d, x.ndim, layout) for d in np.atleast_1d(dim))
        return jnp.mean(x, axis=dims, keepdims=keepdim), (layout if keepdim else TORCH)
    if name == "cat":
        tensors, layouts = x, layout
        dim = rest[0] if rest else kwargs.get("dim", 0)
        if len(set(layouts)) > 1:  # mixed: all in PyTorch's order
            tensors, layouts = [_to_torch(t, lay) for t, lay in zip(tensors, layouts)], (TORCH,) * len(tensors)
        return jnp.concatenate(tensors, axis=_torch_dim(dim, tensors[0].ndim, layouts[0])), layouts[0]
    for n in (1, 2, 3):
        if name == f"max_pool{n}d":
            a = _bind(rest, kwargs, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"))
            if a["return_indices"]:
                raise ValueError(f"from_torch: step {step.name!r}: max_pool{n}d(return_indices=True) is not supported")
            return F.max_pool(_to_cl(x, layout), _ntuple(a["kernel_size"], n), _maybe_ntuple(a["stride"], n),
                              _ntuple(a["padding"], n), dilation=_ntuple(a["dilation"], n),
                              ceil_mode=a["ceil_mode"]), CL
        if name == f"avg_pool{n}d":
            a = _bind(rest, kwargs, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                     "divisor_override"))
            if a["divisor_override"] is not None:
                raise ValueError(f"from_torch: step {step.name!r}: avg_pool{n}d(divisor_override=...) is not supported")
            return F.avg_pool(_to_cl(x, layout), _ntuple(a["kernel_size"], n), _maybe_ntuple(a["stride"], n),
                              _ntuple(a["padding"], n), ceil_mode=a["ceil_mode"],
                              count_include_pad=a["count_include_pad"]), CL
        if name == f"adaptive_avg_pool{n}d":
            return F.adaptive_avg_pool(_to_cl(x, layout), _ntuple(_bind(rest, kwargs, ("output_size",))["output_size"], n)), CL
    raise ValueError(f"from_torch: step {step.name!r}: no conversion for {name!r}")


_POOL_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False,
                  "count_include_pad": True, "divisor_override": None}


def _bind(rest: list, kwargs: dict, names: tuple[str, ...]) -> dict:
    """PyTorch's positional-or-keyword arguments by name, with its defaults."""
    return {k: rest[i] if i < len(rest) else kwargs.get(k, _POOL_DEFAULTS.get(k)) for i, k in enumerate(names)}


def _maybe_ntuple(v: Any, n: int) -> tuple | None:
    return None if v is None or v == () else _ntuple(v, n)  # F.max_pool2d(x, 2, stride=[]) means the window


def from_torch(module: Any, example_input: Any = None, *, rtol: float = 1e-4, atol: float = 1e-5,
               rngs: nnx.Rngs | None = None) -> TorchPort:
    """Port a ``torch.nn.Module`` made of standard layers, weights and ``forward``, to a cnnjax module.

    Supported: ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``BatchNorm1d/2d/3d``, ``Linear``, max, average and
    adaptive-average pools, ``Flatten``, ``Dropout`` (and ``Dropout1d/2d/3d``), the usual activations,
    ``Sequential`` and nested modules, and in ``forward``: ``torch.nn.functional``'s activations and pools,
    ``view``/``reshape``/``flatten``/``size``, ``torch.cat``, ``mean``, ``softmax`` and arithmetic.

    Args:
      module: the PyTorch module (``torch.fx`` must be able to trace it: no data-dependent control flow).
      example_input: an ``(N, C, *spatial)`` input (torch tensor or array) in PyTorch's layout. When given,
        the port is run on it (channels-last) and compared with the module's output, in the module's mode.
      rtol, atol: the tolerance of that comparison.
      rngs: for the Dropout masks in training mode; by default the global stream (:func:`cnnjax.nn.manual_seed`).

    Returns:
      A :class:`TorchPort`: call it on ``(N, *spatial, C)`` arrays. It is in ``module``'s mode (train/eval).

    Raises:
      ValueError: naming the layer, function or method it cannot convert, or, with ``example_input``, the
        largest difference from PyTorch's output.

    Example:
      >>> port = from_torch(torch_model, torch.randn(1, 1, 28, 28))        # doctest: +SKIP
      >>> port(jnp.ones((8, 28, 28, 1))).shape                              # doctest: +SKIP
      (8, 10)
    """
    try:
        import torch
        import torch.fx
    except ImportError as e:  # torch is never a dependency of cnnjax
        raise ImportError("from_torch: needs PyTorch (pip install torch)") from e
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: module must be a torch.nn.Module, got {type(module).__name__}")
    source = type(module).__name__
    rngs = init.layer_rngs(rngs)
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as e:  # fx's own errors name its internals, not the user's model
        raise ValueError(f"from_torch({source}): torch.fx cannot trace its forward ({type(e).__name__}: {e}); "
                         "data-dependent control flow and non-torch calls are not supported") from e
    submodules = dict(module.named_modules())
    program, layers, training = [], {}, module.training
    for node in graph.nodes:
        where = f"{source}: {node.op} {node.target!r} (node {node.name!r})"
        args = _static(torch, node.args, where)
        kwargs = tuple(sorted((k, _static(torch, v, where)) for k, v in node.kwargs.items() if k != "inplace"))
        if node.op == "placeholder":
            program.append(Step(node.name, "input", node.name, (), ()))
        elif node.op == "output":
            program.append(Step(node.name, "output", "", args, ()))
        elif node.op == "call_module":
            m = submodules[node.target]
            op = _module_op(torch, m)
            if op is not None:
                program.append(Step(node.name, "op", op[0], args, op[1]))
                continue
            layer = _convert_layer(torch, node.target, m, rngs)
            if layer is None:
                raise ValueError(f"from_torch({source}): layer {node.target!r} ({m}) has no cnnjax conversion")
            layers[node.target] = layer
            program.append(Step(node.name, "layer", node.target, args, ()))
        elif node.op == "call_function":
            name = _function_name(torch, node.target)
            if name == "dropout":
                p_training = dict(node.kwargs).get("training", node.args[2] if len(node.args) > 2 else True)
                if p_training:
                    raise ValueError(f"from_torch({source}): functional dropout in training mode (node "
                                     f"{node.name!r}) is not supported; use an nn.Dropout layer")
                name = "dropout_eval"
            if name is None:
                raise ValueError(f"from_torch({source}): function {getattr(node.target, '__name__', node.target)!r} "
                                 f"(node {node.name!r}) has no cnnjax conversion")
            program.append(Step(node.name, "op", name, args, kwargs))
        elif node.op == "call_method":
            if node.target not in _METHODS:
                raise ValueError(f"from_torch({source}): tensor method {node.target!r} (node {node.name!r}) has no "
                                 f"cnnjax conversion; supported: {', '.join(sorted(_METHODS))}")
            program.append(Step(node.name, "op", node.target, args, kwargs))
        else:
            raise ValueError(f"from_torch({source}): {node.op} {node.target!r} (node {node.name!r}) is not supported; "
                             "a forward that reads parameters directly needs them in a layer")
    port = TorchPort(tuple(program), layers, source)
    if training:
        port.train()
    else:
        port.eval()
    if example_input is not None:
        _check(torch, module, port, example_input, rtol, atol, source)
    return port


def _check(torch: Any, module: Any, port: TorchPort, example_input: Any, rtol: float, atol: float, source: str) -> None:
    """Run both on ``example_input`` and raise if they differ; batch statistics are left as they were."""
    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(np.asarray(example_input))
    x = x.to(next(iter(module.parameters()), torch.zeros(())).dtype)
    state = nnx.state(port)
    with torch.no_grad():
        buffers = {k: v.clone() for k, v in module.state_dict().items()}
        expected = module(x).detach().cpu().numpy()
        module.load_state_dict(buffers)
    cl = jnp.asarray(np.moveaxis(x.detach().cpu().numpy(), 1, -1) if x.ndim >= 3 else x.detach().cpu().numpy(),
                     jnp.float32)
    got = np.asarray(port(cl))
    nnx.update(port, state)
    if got.ndim >= 3:
        got = np.moveaxis(got, -1, 1)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=rtol, atol=atol):
        diff = np.abs(got - expected).max() if got.shape == expected.shape else "shapes differ"
        raise ValueError(f"from_torch({source}): the port's output differs from PyTorch's on example_input: "
                         f"shape {got.shape} vs {expected.shape}, largest difference {diff}")
