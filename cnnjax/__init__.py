"""cnnjax: a JAX/Flax library for CNN research.

Importing it registers the backends' faster kernels with :mod:`cnnjax.functional.dispatch` and changes no
process-global state (no allocator settings, no compilation, no threads).
"""

__version__ = "0.1.0"

from cnnjax import functional  # noqa: E402
from cnnjax import backends  # noqa: E402

backends.register_all()

__all__ = ["backends", "functional", "__version__"]
