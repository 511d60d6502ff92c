"""The model zoo: ``create(name, ...)``, ``list_models()``, PyTorch weight loading, porting any PyTorch CNN
(``from_torch``) and transfer learning.

Every model takes channels-last input, returns logits, and with ``return_features=True``
also returns a dict of named intermediate feature maps.
"""

from cnnjax.models import (  # noqa: F401  (registers)
    convnext, densenet, efficientnet, gcnn, googlenet, inception, mobilenet, resnet, segmentation, shufflenet, small,
    regnet, squeezenet, vgg, yolo,
)
from cnnjax.models.base import Model
from cnnjax.models.convolutionalize import FullyConvolutional, convolutionalize
from cnnjax.models.from_torch import TorchPort, from_torch
from cnnjax.models.registry import create, list_models, register
from cnnjax.models.timm_names import timm_to_torchvision
from cnnjax.models.torch_port import load_torch_state_dict
from cnnjax.models.transfer import dotted_path, freeze, locate_module, module_paths, param_paths, replace_head
from cnnjax.models.weights import load_weights, read_state_dict, save_weights

__all__ = ["FullyConvolutional", "Model", "TorchPort", "convolutionalize", "create", "dotted_path", "freeze", "from_torch",
           "list_models", "load_torch_state_dict", "load_weights", "locate_module", "module_paths", "param_paths", "read_state_dict", "register", "replace_head", "save_weights",
           "timm_to_torchvision"]
