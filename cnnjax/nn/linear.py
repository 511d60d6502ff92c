"""Linear: Flax's ``nnx.Linear``, built without a compile per parameter shape."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from cnnjax.functional import utils
from cnnjax.nn import init


class _EagerKeys:
    """What ``nnx.Linear`` asks of its ``rngs`` (``.params()``), answered by :func:`cnnjax.nn.init.params_key`:
    the same keys, with the stream advanced eagerly, so a network of many Linears builds in linear time under
    ``nnx.eval_shape``."""

    def __init__(self, rngs: nnx.Rngs):
        self.rngs = rngs

    def params(self):
        return init.params_key(self.rngs)


class Linear(nnx.Linear):
    """Flax's ``nnx.Linear`` (a subclass: the same parameters for a seed, the same ``kernel``/``bias`` paths)
    whose default initializers, LeCun normal and zeros, come from :mod:`cnnjax.nn.init`.

    ``(*batch, in_features) -> (*batch, out_features)``; ``kernel`` is ``(in_features, out_features)``.
    Without ``rngs=`` it draws from the global stream that :func:`cnnjax.nn.manual_seed` seeds, as PyTorch's
    ``nn.Linear(784, 120)`` does.

    Example:
      >>> Linear(3, 4, rngs=nnx.Rngs(0))(jnp.ones((2, 3))).shape
      (2, 4)
    """

    def __init__(self, in_features: int, out_features: int, *, kernel_init: Any = None, bias_init: Any = None,
                 rngs: nnx.Rngs | None = None, **kwargs: Any):
        super().__init__(in_features, out_features, kernel_init=kernel_init or init.lecun_normal(),
                         bias_init=bias_init or init.zeros, rngs=_EagerKeys(init.layer_rngs(rngs)), **kwargs)

    @utils.array_args("inputs")
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, in_features) -> (*batch, out_features)``."""
        return super().__call__(inputs)
