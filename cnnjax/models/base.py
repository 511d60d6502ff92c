"""What every zoo model shares: a named-stage forward pass that can return its intermediates."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from cnnjax.functional import utils


class Model(nnx.Module):
    """A zoo model: ``__call__(x, return_features=False)``.

    Subclasses implement ``forward(x) -> (logits, features)``, where ``features`` is an
    ordered dict of named intermediate maps (stem, stages, pre-logits). ``head_path``
    names the final classifier layer, so :func:`cnnjax.models.replace_head` finds it.
    """

    head_path: tuple[Any, ...] = ("head",)

    def forward(self, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        raise NotImplementedError

    @utils.array_args("x")
    def __call__(self, x: jax.Array, *, return_features: bool = False):
        logits, features = self.forward(x)
        return (logits, features) if return_features else logits


def run_stages(model: nnx.Module, x: jax.Array, names: tuple[str, ...], features: dict) -> jax.Array:
    """Apply ``model.<name>`` for each name in order, recording every output in ``features``."""
    for name in names:
        x = getattr(model, name)(x)
        features[name] = x
    return x
