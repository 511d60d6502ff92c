"""cnnjax: a JAX/Flax library for CNN research."""

__version__ = "0.1.0"

from cnnjax import _host_memory  # noqa: E402

_host_memory.keep_freed_memory()  # before JAX's threads allocate: see cnnjax._host_memory

from cnnjax import functional  # noqa: E402

__all__ = ["functional", "__version__"]
