"""Load PyTorch (torchvision-layout) state dicts into zoo models.

Attribute paths of the zoo models mirror torchvision's module names; ``nnx.Sequential``'s
``layers`` level is dropped, since torch names Sequential children by index alone.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from flax import nnx

from cnnjax import nn

_LEAF = {
    nn.BatchNorm: {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"},
    nn.Conv: {"kernel": "weight", "bias": "bias"},
    nn.ConvTranspose: {"kernel": "weight", "bias": "bias"},
    nnx.Linear: {"kernel": "weight", "bias": "bias"},
    nn.Linear: {"kernel": "weight", "bias": "bias"},
    nn.LayerNorm: {"scale": "weight", "bias": "bias"},
    nn.LayerScale: {"scale": ""},  # a bare parameter in torch (ConvNeXt's ``layer_scale``), (C, 1, 1) there
}


def _leaf_names(module: nnx.Module) -> dict[str, str]:
    """cnnjax leaf name -> torch's, for ``module``'s class or the nearest base in ``_LEAF`` (``nn.Conv2d`` is a ``Conv``)."""
    return next((_LEAF[cls] for cls in type(module).__mro__ if cls in _LEAF), {})


def _torch_key(path: tuple, leaf: str, module: nnx.Module) -> str:
    parts = [str(p) for p in path if p != "layers"]
    name = _leaf_names(module)[leaf]
    return ".".join(parts + [name] if name else parts)


def _to_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def _convert(value: np.ndarray, module: nnx.Module, leaf: str, chw: tuple[int, ...] | None) -> np.ndarray:
    if isinstance(module, nn.LayerScale):
        return value.reshape(-1)  # (C, 1, 1) -> (C,)
    if leaf != "kernel":
        return value
    if isinstance(module, nn.Conv):  # (O, I/g, *k) -> (*k, I/g, O)
        n = value.ndim - 2
        return value.transpose(*range(2, n + 2), 1, 0)
    if isinstance(module, nn.ConvTranspose):  # (I, O/g, *k) -> (*k, I, O/g)
        n = value.ndim - 2
        return value.transpose(*range(2, n + 2), 0, 1)
    if chw is not None:  # a Linear reading a flattened (C, H, W) map: reorder its inputs to (H, W, C)
        c, h, w = chw
        value = value.reshape(value.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(value.shape[0], -1)
    return value.T  # Linear: (out, in) -> (in, out)


def load_torch_state_dict(model: nnx.Module, state_dict: Mapping[str, Any], *, strict: bool = True) -> nnx.Module:
    """Copy a PyTorch state dict (NCHW weights) into a zoo model, in place.

    Conv kernels ``(O, I, *k)`` become ``(*k, I, O)``, linear weights are transposed, and a
    classifier that reads a flattened ``(C, H, W)`` map (VGG, AlexNet) has its inputs
    reordered to channels-last. BatchNorm running statistics are copied as they are.

    Args:
      model: a zoo model whose layout matches the state dict's (ResNet, ResNeXt, VGG,
        AlexNet, DenseNet and Inception follow torchvision's names).
      state_dict: name -> tensor (``torch.Tensor`` or array), e.g. ``torch_model.state_dict()``.
      strict: raise if any key is missing or unexpected (``num_batches_tracked`` is ignored).

    Returns:
      ``model``, with its parameters and batch statistics replaced.

    Raises:
      ValueError: listing missing keys, unexpected keys, and shape mismatches.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"load_torch_state_dict: state_dict must be a mapping of names to tensors "
                        f"(torch_model.state_dict()), got {type(state_dict).__name__}")
    chw_name, chw = getattr(model, "torch_chw", (None, None))
    modules = {path: node for path, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)}
    remaining = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    missing, mismatched, updates = [], [], []
    for path, node in nnx.iter_graph(model):
        if not isinstance(node, nnx.Variable) or not path or path[:-1] not in modules:
            continue
        module = modules[path[:-1]]
        if path[-1] not in _leaf_names(module):
            continue
        key = _torch_key(path[:-1], path[-1], module)
        if key not in remaining:
            missing.append(key)
            continue
        layer_name = key.rsplit(".", 1)[0]
        value = _convert(_to_numpy(remaining.pop(key)), module, path[-1], chw if layer_name == chw_name else None)
        if value.shape != node.shape:
            mismatched.append(f"{key}: torch {value.shape} -> expected {tuple(node.shape)}")
            continue
        updates.append((node, value.astype(node[...].dtype)))
    problems = []
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if strict and missing:
        problems.append(f"missing from the state dict: {missing}")
    if strict and remaining:
        problems.append(f"unexpected keys in the state dict: {sorted(remaining)}")
    if problems:
        raise ValueError(f"load_torch_state_dict({type(model).__name__}): " + " | ".join(problems))
    for node, value in updates:
        node[...] = value
    return model
