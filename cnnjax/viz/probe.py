"""Reading, and nudging, one named layer's output inside a model call: what Grad-CAM and feature visualisation need."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from cnnjax.models.transfer import locate_module, module_paths


class Probe:
    """Stands in for a layer: calls it, adds ``delta`` to its output (unless None) and records the output."""

    def __init__(self, layer: Any, delta: Any):
        self.layer, self.delta, self.output = layer, delta, None

    def __call__(self, *args, **kwargs):
        self.output = self.layer(*args, **kwargs)
        return self.output if self.delta is None else self.output + self.delta


def install_probe(model: nnx.Module, layer: str, delta: Any = None, *, caller: str = "install_probe") -> Probe:
    """Put a :class:`Probe` in place of ``model``'s layer named ``layer`` (see :func:`cnnjax.models.module_paths`).

    Meant for a throwaway copy inside a traced function (``nnx.merge`` of a split model): the probe
    is a plain attribute, not part of the model's graph, and after a call ``probe.output`` holds the
    layer's output.
    """
    container, key, child = locate_module(model, layer, caller=caller)
    probe = Probe(child, delta)
    if isinstance(key, int):
        container[key] = probe
    else:
        object.__setattr__(container, key, probe)
    return probe


def probed_call(graphdef: Any, state: Any, layer: str | None, x: Any, delta: Any = None, *,
                caller: str = "probed_call") -> tuple[Any, Any]:
    """``(output, layer's output)`` of the model ``nnx.merge(graphdef, state)`` in eval mode on ``x``, with
    ``delta`` added to the layer's output; with ``layer=None``, ``(output, None)``. A pure function to trace."""
    m = nnx.merge(graphdef, state)
    m.eval()
    if layer is None:
        return m(x), None
    probe = install_probe(m, layer, delta, caller=caller)
    return m(x), probe.output


def probed_shapes(graphdef: Any, state: Any, layer: str | None, x: Any, *, caller: str) -> tuple[Any, Any]:
    """:func:`probed_call`'s output shapes (``jax.eval_shape``; ``x`` may be a ``ShapeDtypeStruct``). A layer the
    model only holds, as a container of the layers it calls, is an error that lists those layers."""
    try:
        return jax.eval_shape(lambda st, v: probed_call(graphdef, st, layer, v, caller=caller), state, x)
    except TypeError as e:
        if Probe.__name__ not in str(e):
            raise
        children = [p for p in module_paths(nnx.merge(graphdef, state))
                    if p.startswith(f"{layer}.") and p.count(".") == layer.count(".") + 1]
        raise ValueError(f"{caller}: the model uses {layer!r} as a container rather than calling it; "
                         f"choose one of its layers: {', '.join(children)}") from None
