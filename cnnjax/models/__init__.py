"""The model zoo: ``create(name, ...)``, ``list_models()``, and transfer-learning helpers."""

from cnnjax.models import densenet, resnet, small, vgg  # noqa: F401  (importing registers the models)
from cnnjax.models.base import Model
from cnnjax.models.registry import create, list_models, register

__all__ = ["Model", "create", "list_models", "register"]
