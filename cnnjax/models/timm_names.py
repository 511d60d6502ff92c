"""timm's names for the zoo's models, renamed to torchvision's, so timm checkpoints load too.

timm's ResNet, ResNeXt, Wide ResNet, DenseNet and Inception v3 (``aux_logits=False``: timm builds none) already use
torchvision's names. EfficientNet, MobileNetV2, ConvNeXt, RegNet and VGG it builds from the same blocks as
torchvision, in the same order, and names them its own way (``conv_stem``, ``blocks.2.1.conv_pwl``,
``stages.1.blocks.0.gamma``, ``s2.b1.conv1.conv``, ``pre_logits.fc1``). :func:`timm_to_torchvision` maps those names to
torchvision's, which the zoo models share; :func:`cnnjax.models.load_torch_state_dict` then converts
the layouts. The rules are by name, not by position, so ``.safetensors`` files (whose tensors are not
stored in module order) convert too.

Which timm models are torchvision's architecture (checked by comparing logits with timm 1.0):
``efficientnet_b0`` to ``b3`` (timm's PyTorch-native EfficientNets; ``tf_efficientnet_*`` pad
like TensorFlow and are not), ``mobilenetv2_100``, ``convnext_tiny`` and ``small`` (``base`` and
``large`` have torchvision's parameter counts too), the ``regnetx_*``/``regnety_*`` models whose
widths equal torchvision's (``regnety_004``, ``016``, ``032``, ``regnetx_008``, ``016``, ``032``, and
timm's ``_tv`` variants such as ``regnetx_004_tv``; timm's own ``regnetx_004``, ``regnety_008`` and
``regnety_080`` have other widths, and loading them fails naming the shapes that differ), ``vgg*`` at 224 px and below (above, timm's conv classifier slides over
a larger map where torchvision pools it to 7x7 first), and ``mobilenetv3_large_100``/``small_100``
in a zoo model built with ``norm_eps=1e-5`` (timm's BatchNorm eps; torchvision's is 1e-3, which
:func:`timm_to_torchvision` refuses rather than compute something else).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from flax import nnx

from cnnjax.nn import BatchNorm

__all__ = ["FAMILIES", "timm_family", "timm_to_torchvision"]

#: The zoo model classes whose timm checkpoints convert, and the timm family each reads.
FAMILIES = {"EfficientNet": "efficientnet", "MobileNetV2": "mobilenet_v2", "ConvNeXt": "convnext", "RegNet": "regnet",
            "VGG": "vgg", "MobileNetV3": "mobilenet_v3"}

# A timm inverted-residual block's parts in forward order (present ones only, as torchvision numbers them)
_IR = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("se", None), ("conv_pwl", "bn3"))
_DS = (("conv_dw", "bn1"), ("se", None), ("conv_pw", "bn2"))
_CONV_BN = (("conv", "bn1"),)  # MobileNetV3's last 1x1 conv
_SE = {"conv_reduce": "fc1", "conv_expand": "fc2"}


def timm_family(state_dict: Mapping[str, Any]) -> str | None:
    """The timm layout a state dict is in: ``"efficientnet"`` (EfficientNet, MobileNet), ``"convnext"``,
    ``"regnet"``, ``"vgg"``, ``"mobilenet_v3"``, or ``None`` when it is not timm's (or is torchvision's too:
    timm's ResNet, ResNeXt, Wide ResNet and DenseNet names are torchvision's)."""
    keys = set(state_dict)
    if "conv_stem.weight" in keys:
        return "mobilenet_v3" if "conv_head.bias" in keys else "efficientnet"
    if any(k.startswith("stages.") for k in keys) and "stem.0.weight" in keys:
        return "convnext"
    if "stem.conv.weight" in keys and any(re.match(r"s\d+\.b\d+\.", k) for k in keys):
        return "regnet"
    if "pre_logits.fc1.weight" in keys:
        return "vgg"
    return None


def timm_to_torchvision(state_dict: Mapping[str, Any], model: nnx.Module) -> dict[str, Any]:
    """Rename a timm state dict for ``model``, a zoo model of a class in :data:`FAMILIES`.

    Values pass through unchanged except where timm has a conv and torchvision a linear layer
    (VGG's classifier; a ``(O, C, 7, 7)`` kernel flattens in torchvision's ``(C, H, W)`` order).

    Raises:
      ValueError: the state dict is not in timm's layout for the model's class, holds a name no rule
        covers, or is a MobileNetV3 one while the model's BatchNorm eps is not timm's 1e-5.
    """
    model_class = type(model).__name__
    family = timm_family(state_dict)
    want = FAMILIES.get(model_class)
    if want is None:
        raise ValueError(f"timm_to_torchvision: timm checkpoints convert for {sorted(FAMILIES)}, not {model_class}")
    if family != ("efficientnet" if want == "mobilenet_v2" else want):
        raise ValueError(f"timm_to_torchvision: {model_class} needs a timm {want} checkpoint, but the state dict "
                         f"is {'not in timm layout' if family is None else 'a timm ' + family + ' one'}")
    if family == "mobilenet_v3":
        eps = {float(m.eps) for _, m in nnx.iter_graph(model) if isinstance(m, BatchNorm)}
        if eps != {1e-5}:
            raise ValueError(f"timm_to_torchvision: a timm MobileNetV3 checkpoint, trained with BatchNorm eps 1e-5, but "
                             f"the model's is {sorted(eps)} (torchvision's); build it with norm_eps=1e-5, e.g. "
                             f"models.create('mobilenet_v3_large', norm_eps=1e-5, weights=...)")
    rename = {"efficientnet": _efficientnet, "mobilenet_v2": _efficientnet, "mobilenet_v3": _efficientnet,
              "vgg": _vgg, "convnext": lambda sd, f: _by_rules(sd, f, _CONVNEXT),
              "regnet": lambda sd, f: _by_rules(sd, f, _REGNET)}[want]
    return rename(dict(state_dict), want)


def _unknown(key: str, family: str) -> ValueError:
    return ValueError(f"timm_to_torchvision: no rule renames {key!r} of a timm {family} checkpoint")


def _efficientnet(sd: dict[str, Any], family: str) -> dict[str, Any]:
    """EfficientNet (``features.{stage + 1}.{j}.block.{part}``), MobileNetV2 (``features.{n}.conv.{...}``) and
    MobileNetV3 (``features.{n}.block.{part}``, its 1x1 conv head a linear ``classifier.0``)."""
    blocks: dict[tuple[int, int], dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for k, v in sd.items():
        m = re.match(r"blocks\.(\d+)\.(\d+)\.(.+)$", k)
        if m:
            blocks.setdefault((int(m[1]), int(m[2])), {})[m[3]] = v
    flat = {key: i + 1 for i, key in enumerate(sorted(blocks))}  # MobileNetV2 numbers its blocks across stages
    stages = 1 + max(s for s, _ in blocks)
    head = stages + 1 if family == "efficientnet" else len(blocks) + 1
    top = {"conv_stem.weight": "features.0.0.weight", "conv_head.weight": f"features.{head}.0.weight",
           "classifier.weight": "classifier.1.weight", "classifier.bias": "classifier.1.bias"}
    if family == "mobilenet_v3":
        top.update({"conv_head.weight": "classifier.0.weight", "conv_head.bias": "classifier.0.bias",
                    "classifier.weight": "classifier.3.weight", "classifier.bias": "classifier.3.bias"})
    for k, v in sd.items():
        if k.startswith("blocks."):
            continue
        bn = re.match(r"bn([12])\.(.+)$", k)
        if k == "conv_head.weight" and family == "mobilenet_v3":
            out[top[k]] = v.reshape(v.shape[0], -1)
        elif k in top:
            out[top[k]] = v
        elif bn:
            out[f"features.{0 if bn[1] == '1' else head}.1.{bn[2]}"] = v
        elif not k.endswith("num_batches_tracked"):
            raise _unknown(k, family)
    for (s, j), parts in blocks.items():
        prefix = {"efficientnet": f"features.{s + 1}.{j}.block", "mobilenet_v2": f"features.{flat[(s, j)]}.conv",
                  "mobilenet_v3": f"features.{flat[(s, j)]}.block"}[family]
        layout = _IR if any(p.startswith("conv_pwl.") for p in parts) else _DS
        if any(p.startswith("conv.") for p in parts):
            layout, prefix = _CONV_BN, f"features.{flat[(s, j)]}"
        present = [(conv, norm) for conv, norm in layout if any(p.startswith(conv + ".") for p in parts)]
        for name, v in parts.items():
            if name.endswith("num_batches_tracked"):
                continue
            head_name, _, leaf = name.partition(".")
            index = next((i for i, (conv, norm) in enumerate(present) if head_name in (conv, norm)), None)
            if index is None:
                raise _unknown(f"blocks.{s}.{j}.{name}", family)
            is_norm = head_name == present[index][1]
            if head_name == "se":
                sub, _, leaf = leaf.partition(".")
                out[f"{prefix}.{index}.{_SE[sub]}.{leaf}"] = v
            elif layout is _CONV_BN:
                out[f"{prefix}.{int(is_norm)}.{leaf}"] = v
            elif family == "mobilenet_v2" and index == len(present) - 1:  # the projection: a bare conv, then its norm
                out[f"{prefix}.{index + is_norm}.{leaf}"] = v
            else:
                out[f"{prefix}.{index}.{int(is_norm)}.{leaf}"] = v
    return out


def _by_rules(sd: dict[str, Any], family: str, rules: list) -> dict[str, Any]:
    """Rename every key by the first ``(pattern, name_of_match)`` rule whose pattern matches it in full and names it."""
    out = {}
    for k, v in sd.items():
        for pattern, name in rules:
            if (m := re.fullmatch(pattern, k)) and (new := name(m)) is not None:
                out[new] = v
                break
        else:
            raise _unknown(k, family)
    return out


_CONVNEXT_BLOCK = {"gamma": "layer_scale", "conv_dw": "block.0", "norm": "block.2", "mlp.fc1": "block.3",
                   "mlp.fc2": "block.5"}
_CONVNEXT = [
    (r"stem\.([01])\.(\w+)", lambda m: f"features.0.{m[1]}.{m[2]}"),
    (r"stages\.(\d+)\.downsample\.([01])\.(\w+)", lambda m: f"features.{2 * int(m[1])}.{m[2]}.{m[3]}"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.(gamma|conv_dw|norm|mlp\.fc1|mlp\.fc2)(\.\w+)?",
     lambda m: f"features.{2 * int(m[1]) + 1}.{m[2]}.{_CONVNEXT_BLOCK[m[3]]}{m[4] or ''}"),
    (r"head\.(norm|fc)\.(\w+)", lambda m: f"classifier.{0 if m[1] == 'norm' else 2}.{m[2]}"),
]

_REGNET_BLOCK = {"conv1.conv": "f.a.0", "conv1.bn": "f.a.1", "conv2.conv": "f.b.0", "conv2.bn": "f.b.1",
                 "se.fc1": "f.se.fc1", "se.fc2": "f.se.fc2", "conv3.conv": "f.c.0", "conv3.bn": "f.c.1",
                 "downsample.conv": "proj.0", "downsample.bn": "proj.1"}
_REGNET = [
    (r"stem\.(conv|bn)\.(\w+)", lambda m: f"stem.{0 if m[1] == 'conv' else 1}.{m[2]}"),
    (r"s(\d+)\.b(\d+)\.(\w+\.\w+)\.(\w+)", lambda m: f"trunk_output.block{m[1]}.block{m[1]}-{int(m[2]) - 1}."
                                                  f"{_REGNET_BLOCK[m[3]]}.{m[4]}" if m[3] in _REGNET_BLOCK else None),
    (r"head\.fc\.(\w+)", lambda m: f"fc.{m[1]}"),
]

# timm's VGG runs its classifier as convs (pre_logits.fc1 7x7, fc2 1x1) before head.fc
_VGG = [
    (r"features\..+", lambda m: m[0]),
    (r"(pre_logits\.fc1|pre_logits\.fc2|head\.fc)\.(weight|bias)",
     lambda m: f"classifier.{ {'pre_logits.fc1': 0, 'pre_logits.fc2': 3, 'head.fc': 6}[m[1]] }.{m[2]}"),
]


def _vgg(sd: dict[str, Any], family: str) -> dict[str, Any]:
    out = _by_rules(sd, family, _VGG)
    return {k: v.reshape(v.shape[0], -1) if k.startswith("classifier.") and k.endswith(".weight") else v
            for k, v in out.items()}
