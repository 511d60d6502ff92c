"""Faster implementations of :mod:`cnnjax.functional`'s ops, one package per platform, registered with
:mod:`cnnjax.functional.dispatch`.

Layout: ``cnnjax/backends/<platform>/`` holds a platform's kernels and an ``__init__`` whose ``register()``
adds them (``dispatch.register``/``register_rule``/``register_rewrite``). A new backend (a Pallas GPU kernel,
say) is one more such package, registered in :func:`register_all`; no functional op changes. Every
implementation must compute its op's ``lax`` maths to float rounding, derivatives included, and is tested
against it (``tests/backends/``).
"""

from __future__ import annotations

from cnnjax.backends import cpu

_registered: list[bool] = []


def register_all() -> None:
    """Register every backend's implementations (once; ``import cnnjax`` does it)."""
    if not _registered:
        cpu.register()
        _registered.append(True)


__all__ = ["cpu", "register_all"]
