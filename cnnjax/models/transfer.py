"""Transfer learning: swap the classifier head, freeze parameters by path pattern."""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import optax
from flax import nnx

from cnnjax import nn


def _locate(model: nnx.Module, path: tuple):
    parent = model
    for p in path[:-1]:
        parent = parent[p] if isinstance(p, int) else getattr(parent, p)
    last = path[-1]
    return parent, last, (parent[last] if isinstance(last, int) else getattr(parent, last))


def replace_head(model: nnx.Module, num_classes: int, *, rngs: nnx.Rngs | None = None, seed: int = 0) -> nnx.Module:
    """Replace a zoo model's final classifier with a fresh one for ``num_classes`` outputs, in place.

    Works on every zoo model (its ``head_path`` names the layer): a Linear head stays Linear,
    a 1x1 conv head (U-Net, FCN, YOLO) stays a conv of the same kernel size.

    Example:
      >>> from cnnjax.models import create
      >>> model = replace_head(create("resnet18", num_classes=1000), 5)
      >>> model(jnp.ones((1, 64, 64, 3))).shape
      (1, 5)
    """
    rngs = rngs if rngs is not None else nnx.Rngs(seed)
    path = getattr(model, "head_path", None)
    if path is None:
        raise TypeError(f"replace_head: {type(model).__name__} has no head_path; it is not a zoo model")
    parent, last, old = _locate(model, path)
    if isinstance(old, nnx.Linear):
        new = nn.Linear(old.in_features, num_classes, rngs=rngs)
    elif isinstance(old, nn.Conv):
        new = nn.Conv(old.in_channels, num_classes, old.kernel_size, stride=old.stride, padding=old.padding, rngs=rngs)
    else:
        raise TypeError(f"replace_head: the head at {path} is a {type(old).__name__}, not a Linear or Conv")
    if isinstance(last, int):
        parent[last] = new
    else:
        setattr(parent, last, new)
    return model


def param_paths(model: nnx.Module) -> list[str]:
    """Every parameter's dotted path, e.g. ``layer1.0.conv1.kernel`` (what :func:`freeze` patterns match).

    The names are those of ``return_features`` and :func:`module_paths`: a container's
    ``layers`` step is left out, so ``conv1.0`` is the first layer of the ``conv1`` block.
    """
    state = nnx.state(model, nnx.Param)
    return [dotted_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


def dotted_path(path: Sequence) -> str:
    """A pytree or graph path as cnnjax names it: ``("conv1", "layers", 0, "kernel")`` -> ``"conv1.0.kernel"``."""
    parts = []
    for k in path:
        key = getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))
        if key != "layers" and key != "value":
            parts.append(str(key))
    return ".".join(parts)


def module_paths(model: nnx.Module) -> list[str]:
    """Every submodule's name, as ``nnx.iter_graph`` walks them (a block after its layers): ``["conv1.0", "conv1", ...]``."""
    names = (dotted_path(p) for p, node in nnx.iter_graph(model) if p and isinstance(node, nnx.Module))
    return list(dict.fromkeys(n for n in names if n))


def locate_module(model: nnx.Module, name: str, *, caller: str = "locate_module") -> tuple[Any, str | int, nnx.Module]:
    """``(container, key, module)`` for a submodule named as :func:`module_paths` names it.

    ``container[key]`` (an int key) or ``getattr(container, key)`` is the module, so a caller can
    also replace it there. The explicit ``layers`` step (``"conv1.layers.0"``) is accepted too.
    """
    node, container, key = model, None, None
    try:
        for part in name.split("."):
            if part == "layers" and isinstance(getattr(node, "layers", None), (list, tuple)):
                continue
            if part.lstrip("-").isdigit():
                container, key = (node.layers if hasattr(node, "layers") else node), int(part)
                node = container[key]
            else:
                container, key = node, part
                node = getattr(node, part)
    except (AttributeError, IndexError, KeyError, TypeError):
        node = None
    if not isinstance(node, nnx.Module) or container is None:
        raise ValueError(f"{caller}: the model has no layer {name!r}; its layers include: "
                         f"{', '.join(module_paths(model)[:40])}")
    return container, key, node


def freeze(tx: optax.GradientTransformation, patterns: str | Sequence[str]) -> optax.GradientTransformation:
    """Wrap an optimizer so parameters whose path matches any regex in ``patterns`` never change.

    Uses ``optax.multi_transform`` with ``optax.set_to_zero`` for the frozen labels, so frozen
    parameters get zero updates and keep no optimizer state. Paths look like
    ``layer1.0.conv1.kernel`` (see :func:`param_paths`); patterns use ``re.search``.

    Args:
      tx: the optimizer for the trainable parameters.
      patterns: e.g. ``r"^(conv1|bn1|layer[1-3])\\."`` to fine-tune only ``layer4`` and ``fc``.

    Returns:
      A transformation over ``nnx.state(model, nnx.Param)``.

    Example:
      >>> from cnnjax.models import create
      >>> model = create("simple_cnn")
      >>> params = nnx.state(model, nnx.Param)
      >>> tx = freeze(optax.sgd(0.1), r"^conv")
      >>> updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
      >>> float(jnp.abs(updates["conv1"]["layers"][0]["kernel"][...]).max())
      0.0
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    compiled = [re.compile(p) for p in patterns]

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if any(c.search(dotted_path(path)) for c in compiled) else "trainable", params
        )

    return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)
