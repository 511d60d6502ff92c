"""cnnjax: a JAX/Flax library for CNN research."""

__version__ = "0.1.0"

from cnnjax import functional  # noqa: E402

__all__ = ["functional", "__version__"]
