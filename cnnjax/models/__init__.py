"""The model zoo: ``create(name, ...)``, ``list_models()``, and transfer-learning helpers."""

from cnnjax.models import small  # noqa: F401  (registers its models)
from cnnjax.models.base import Model
from cnnjax.models.registry import create, list_models, register

__all__ = ["Model", "create", "list_models", "register"]
