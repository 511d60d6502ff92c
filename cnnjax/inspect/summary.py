"""``summary(model, input_shape)``: a torchinfo-style table, computed with ``jax.eval_shape``."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from cnnjax import nn
from cnnjax.functional import utils


def count_params(model: nnx.Module, kind: Any = nnx.Param) -> int:
    """Number of scalars in a model's variables of ``kind`` (default: trainable parameters).

    Example:
      >>> from cnnjax.models import create
      >>> count_params(create("simple_cnn"))
      106154
    """
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, kind)))


# Leaf layers shown as rows; the containers around them are not.
LAYER_TYPES = (
    nn.Conv, nn.ConvTranspose, nnx.Linear, nn.BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm,
    nn.LocalResponseNorm, nn.MaxPool, nn.AvgPool, nn.AdaptiveAvgPool, nn.GlobalAvgPool, nn.Dropout,
    nn.Upsample, nn.PixelShuffle, nn.Flatten,
)


@dataclasses.dataclass
class LayerRow:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int


@dataclasses.dataclass(repr=False)
class Summary:
    """The table's rows and totals; ``str(summary)`` and ``repr(summary)`` are the table, so
    ``print(summary(...))`` and a notebook cell ending in ``summary(...)`` both show it once."""

    rows: list[LayerRow]
    input_shape: tuple[int, ...]
    trainable_params: int
    non_trainable: int
    mult_adds: int
    input_mb: float
    activations_mb: float
    params_mb: float

    def __str__(self) -> str:
        head = ("Layer (path)", "Type", "Output shape", "Params", "Mult-adds")
        body = [(r.name, r.type, str(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}") for r in self.rows]
        widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
        line = "=" * (sum(widths) + 2 * (len(widths) - 1))

        def fmt(cells):
            return "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [line, fmt(head), line, *map(fmt, body), line]
        out += [
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable (batch statistics): {self.non_trainable:,}",
            f"Total mult-adds: {self.mult_adds:,} ({self.mult_adds / 1e9:.3f} G)",
            line,
            f"Input size (MB): {self.input_mb:.2f}",
            f"Forward activations size (MB): {self.activations_mb:.2f}",
            f"Params size (MB): {self.params_mb:.2f}",
            f"Estimated total size (MB): {self.input_mb + self.activations_mb + self.params_mb:.2f}",
            line,
        ]
        return "\n".join(out)

    __repr__ = __str__


MULT_ADDS = ("products", "torchinfo")


def _torchinfo_mult_adds(module: nnx.Module, y: Any) -> int:
    """torchinfo's count: every parameter (biases and norm scales too) once per output position of a
    conv, once per example elsewhere."""
    per = math.prod(y.shape[:-1]) if isinstance(module, (nn.Conv, nn.ConvTranspose)) else y.shape[0]
    return sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(module, nnx.Param))) * per


def _mult_adds(module: nnx.Module, x: Any, y: Any, convention: str = "products") -> int:
    if convention == "torchinfo":
        return _torchinfo_mult_adds(module, y)
    if isinstance(module, nn.Conv):
        k = module.kernel.shape
        return math.prod(y.shape) * math.prod(k[:-1])  # each output: prod(k) * C_in/groups products
    if isinstance(module, nn.ConvTranspose):
        k = module.kernel.shape
        return math.prod(x.shape) * math.prod(k[:-2]) * k[-1]
    if isinstance(module, nnx.Linear):
        return math.prod(y.shape) * module.in_features
    return 0


@contextlib.contextmanager
def _record(paths: dict[int, tuple], rows: list, convention: str = "products") -> Iterator[None]:
    originals = {cls: cls.__call__ for cls in LAYER_TYPES}

    def wrap(cls, call):
        def recorded(self, x, *args, **kwargs):
            y = call(self, x, *args, **kwargs)
            path = paths.get(id(self))
            if path is not None:
                params = sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(self, nnx.Param)))
                name = ".".join(str(p) for p in path if p != "layers") or "(model)"
                rows.append(LayerRow(name, cls.__name__, tuple(y.shape), params, _mult_adds(self, x, y, convention)))
            return y

        return recorded

    try:
        for cls, call in originals.items():
            cls.__call__ = wrap(cls, call)
        yield
    finally:
        for cls, call in originals.items():
            cls.__call__ = call


def summary(model: nnx.Module, input_shape: Sequence[int], *, dtype: Any = jnp.float32, mult_adds: str = "products",
            print_table: bool = False) -> Summary:
    """A per-layer table like torchinfo's: path, type, output shape, parameters, multiply-adds.

    Nothing is computed: the model runs under ``jax.eval_shape`` (in eval mode, on a copy),
    so even an abstract model from ``nnx.eval_shape`` can be summarised. Mult-adds count
    the convolutions and linear layers for the given input (batch included): with
    ``mult_adds="products"`` the multiplications ``w * x`` only; with ``"torchinfo"``
    torchinfo's convention, which adds one per bias (and norm scale and shift) per output,
    so the numbers equal the tables of ``torchinfo.summary``.

    The result is the table: ``print(summary(...))`` shows it (once), as does a notebook
    cell that ends with ``summary(...)``.

    Args:
      model: any NNX module built from :mod:`cnnjax.nn` layers and ``nnx.Linear``.
      input_shape: the full input shape, batch included, e.g. ``(1, 224, 224, 3)``.
      mult_adds: "products" (default) or "torchinfo".
      print_table: also print the table here.

    Returns:
      A :class:`Summary` with ``rows`` and totals.

    Example:
      >>> from cnnjax.models import create
      >>> s = summary(create("simple_cnn"), (1, 28, 28, 1))
      >>> s.trainable_params, s.mult_adds, s.rows[0].output_shape
      (106154, 316680, (1, 28, 28, 6))
      >>> summary(create("mnist1d_cnn"), (100, 40, 1), mult_adds="torchinfo").mult_adds  # the lecture's 1.07 M
      1072000
    """
    if mult_adds not in MULT_ADDS:
        raise ValueError(f"summary: mult_adds must be one of {MULT_ADDS}, got mult_adds={mult_adds!r}")
    input_shape = utils.as_shape(input_shape, "input_shape", "summary", min_rank=2)
    graphdef, state = nnx.split(model)
    rows: list[LayerRow] = []

    def run(state, x):
        m = nnx.merge(graphdef, state)
        m.eval()
        paths = {id(node): path for path, node in nnx.iter_graph(m) if isinstance(node, LAYER_TYPES)}
        with _record(paths, rows, mult_adds):
            return m(x)

    jax.eval_shape(run, state, jax.ShapeDtypeStruct(tuple(input_shape), dtype))
    itemsize = jnp.dtype(dtype).itemsize
    params_bytes = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(state))
    result = Summary(
        rows=rows,
        input_shape=tuple(input_shape),
        trainable_params=count_params(model),
        non_trainable=count_params(model, nnx.BatchStat),
        mult_adds=sum(r.mult_adds for r in rows),
        input_mb=math.prod(input_shape) * itemsize / 1e6,
        activations_mb=sum(math.prod(r.output_shape) for r in rows) * itemsize / 1e6,
        params_mb=params_bytes / 1e6,
    )
    if print_table:
        print(result)
    return result
