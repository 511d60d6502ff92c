"""Reading, and nudging, one named layer's output inside a model call: what Grad-CAM and feature visualisation need."""

from __future__ import annotations

from typing import Any

from flax import nnx

from cnnjax.models.transfer import locate_module


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
