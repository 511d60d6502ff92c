"""The model registry: ``create(name, ...)`` and ``list_models()``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
from flax import nnx

from cnnjax.nn.init import seed_key

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {}


def register(name: str | None = None, **preset: Any) -> Callable:
    """Register a builder ``fn(*, num_classes, in_channels, rngs, **options)`` under ``name``.

    ``preset`` fixes options, so one builder serves a family (``resnet18``, ``resnet34``...).
    """

    def wrap(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"register: a model named {key!r} is already registered")
        _REGISTRY[key] = (lambda **kw: fn(**{**preset, **kw})) if preset else fn
        _REGISTRY[key].__doc__ = fn.__doc__
        _REGISTRY[key].builder = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted.

    Example:
      >>> "resnet50" in list_models()
      True
    """
    return sorted(_REGISTRY)


def create(name: str, *, rngs: nnx.Rngs | None = None, seed: int = 0, weights: Any = None, **options: Any) -> nnx.Module:
    """Build a zoo model by name.

    Args:
      name: one of :func:`list_models`.
      rngs: ``nnx.Rngs`` for initialisation; defaults to ``nnx.Rngs(seed)``.
      seed: used when ``rngs`` is not given.
      weights: a path to load after building: a torchvision/timm ``.pth`` file (read with
        ``torch.load(weights_only=True)``), a ``.safetensors`` file, or a folder written by
        ``cnnjax convert-weights``. Nothing is downloaded. See :func:`cnnjax.models.weights.load_weights`.
      **options: ``num_classes``, ``in_channels`` and the model's own options (``num_classes`` must be the
        file's: build with it, then :func:`cnnjax.models.replace_head` for a new task).

    Returns:
      The model, in training mode. Call ``model(x)`` for logits, or
      ``model(x, return_features=True)`` for ``(logits, {name: feature map})``.

    Example:
      >>> model = create("simple_cnn", num_classes=10)
      >>> model(jnp.ones((2, 28, 28, 1))).shape
      (2, 10)
    """
    if name not in _REGISTRY:
        raise ValueError(f"create: unknown model {name!r}; available: {', '.join(list_models())}")
    builder = _REGISTRY[name]
    accepted = inspect.signature(builder.builder).parameters
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in options if k not in accepted and not has_var_kw]
    if unknown:
        allowed = [k for k in accepted if k != "rngs"]
        raise ValueError(f"create: model {name!r} has no option(s) {unknown}; its options: {', '.join(allowed)}")
    if rngs is None:
        with jax.ensure_compile_time_eval():  # a concrete key stream even under eval_shape: see nn.init.params_key
            rngs = nnx.Rngs(seed_key(seed))
    model = builder(rngs=rngs, **options)
    if weights is not None:
        from cnnjax.models.weights import load_weights  # reads torch/safetensors/orbax only when asked

        load_weights(model, weights)
    return model
