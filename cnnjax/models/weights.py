"""Weights from files the user has: torchvision/timm ``.pth`` checkpoints, ``.safetensors`` files, and the
orbax checkpoints that :func:`save_weights` (``cnnjax convert-weights``) writes.

Nothing here downloads: cnnjax reads only the path it is given. A ``.pth`` file is read with
``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from flax import nnx

from cnnjax.models.timm_names import timm_family, timm_to_torchvision
from cnnjax.models.torch_port import load_torch_state_dict

__all__ = ["load_weights", "read_state_dict", "save_weights"]

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "model_ema")  # how training scripts nest theirs


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The name -> array dict stored in a ``.pth``/``.pt`` (PyTorch) or ``.safetensors`` file.

    PyTorch files that nest the weights (``{"state_dict": ...}``, ``{"model": ...}``, as training scripts and
    timm save them) are unwrapped, and a ``module.`` prefix (``DataParallel``) is dropped.

    Raises:
      FileNotFoundError: the file does not exist (cnnjax never downloads weights).
      ImportError: the format's reader (torch, safetensors) is not installed.
      ValueError: the file holds no tensors or has an unknown suffix.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist; cnnjax never downloads weights: fetch "
                                f"them (e.g. torchvision's URL for the model) on a machine with internet and pass the path")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError as e:
            raise ImportError(f"reading {path.name} needs the safetensors package (pip install safetensors)") from e
        return dict(load_file(str(path)))
    if path.suffix not in _TORCH_SUFFIXES:
        raise ValueError(f"weights file {path.name!r}: unknown format; expected {', '.join(_TORCH_SUFFIXES)}, "
                         ".safetensors, or a folder written by cnnjax convert-weights")
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path.name} needs PyTorch (pip install torch); or convert it once with "
                          "`cnnjax convert-weights` where torch is installed") from e
    obj: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    tensors = {k: v for k, v in obj.items() if hasattr(v, "detach")} if isinstance(obj, Mapping) else {}
    if not tensors:
        raise ValueError(f"weights file {path.name!r} holds no state dict (found {type(obj).__name__})")
    strip = all(k.startswith("module.") for k in tensors)
    return {(k[len("module."):] if strip else k): v.detach().cpu().numpy() for k, v in tensors.items()}


def save_weights(model: nnx.Module, path: str | Path) -> Path:
    """Write the model's parameters and batch statistics as an orbax checkpoint folder at ``path`` (new)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    if path.exists():
        raise FileExistsError(f"save_weights: {str(path)!r} already exists; choose a new folder")
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, nnx.to_pure_dict(nnx.state(model)))
    return path


def load_weights(model: nnx.Module, path: str | Path, *, strict: bool = True) -> nnx.Module:
    """Fill ``model`` in place from a weights file or a :func:`save_weights` folder; returns it.

    ``.pth``/``.pt``/``.safetensors`` files go through :func:`cnnjax.models.load_torch_state_dict` (PyTorch
    names and layouts: torchvision's for the zoo models); ``strict`` as there. A timm checkpoint of
    EfficientNet, MobileNetV2, MobileNetV3, ConvNeXt, RegNet or VGG is renamed to torchvision's names first
    (:func:`cnnjax.models.timm_to_torchvision`).
    """
    path = Path(path)
    if path.is_dir():
        import orbax.checkpoint as ocp

        state = nnx.state(model)
        target = nnx.to_pure_dict(state)
        try:
            with ocp.StandardCheckpointer() as ckpt:
                restored = ckpt.restore(path.absolute(), target)
        except Exception as e:  # orbax's messages list tree paths; say what happened in one line first
            raise ValueError(f"load_weights: {str(path)!r} is not a cnnjax weights folder for "
                             f"{type(model).__name__} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
        nnx.replace_by_pure_dict(state, restored)
        nnx.update(model, state)
        return model
    state_dict = read_state_dict(path)
    if timm_family(state_dict) is not None:
        state_dict = timm_to_torchvision(state_dict, model)
    return load_torch_state_dict(model, state_dict, strict=strict)
