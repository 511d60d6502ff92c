"""The one place where a functional op asks for a faster implementation than its own ``lax`` maths.

Every op in :mod:`cnnjax.functional` canonicalises and validates its arguments, then calls
:func:`implementation` with the op's name and its (static) geometry. The answer is either ``None``,
and the op computes its ``lax`` maths, or a callable with the op's fixed implementation signature
(listed in ``SIGNATURES``) that computes the same function to float rounding, derivatives included.

Implementations live in backend packages (:mod:`cnnjax.backends`; the CPU one is
:mod:`cnnjax.backends.cpu`), which call :func:`register` for each and :func:`register_rule` for the
rule that picks among them automatically on a platform. ``functional`` never names them. A new
kernel (a Pallas kernel for GPU, say) is a new module under ``cnnjax/backends/<platform>/`` that
registers itself; no op changes.

The switches (:func:`conv_strategy`, :func:`excluding`) set a ``jax.make_user_context`` value, which
JAX includes in its ``jit`` cache key: a function jitted once and called again under another switch
is traced again, so a switch is never silently ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator

import jax

#: What each op passes an implementation (arrays first, then static geometry); an implementation returns
#: what the op's ``lax`` maths would at that point.
SIGNATURES = {
    "conv": "fn(x (N, *spatial, C_in), w (*k, C_in/groups, C_out), strides, pads, input_dilation, dilation, groups, "
            "precision) -> (N, *out, C_out); x already padded for padding modes other than zeros",
    "conv_transpose": "fn(x (N, *spatial, C_in), w (*k, C_in, C_out/groups), strides, padding, output_padding, "
                      "dilation, groups, out_size, precision) -> (N, *out_size, C_out)",
    "max_pool": "fn(x (*batch, *spatial, C), window, strides, pads, dilation) -> (*batch, *out, C)",
    "batch_norm": "fn(x (*batch, *spatial, C), scale (C,) | None, bias (C,) | None, eps) -> (y, mean (C,), var (C,)), "
                  "training statistics over every axis but the last, all in the statistics dtype",
}
OPS = tuple(SIGNATURES)
#: The name that always means the op's own ``lax`` maths.
LAX = "lax"


@dataclasses.dataclass(frozen=True)
class Implementation:
    """A registered implementation of ``op``: ``fn`` computes it where ``supports(**geometry)`` is true and
    ``available()`` (e.g. a native library loaded) holds; ``platform=None`` means any JAX platform."""

    op: str
    name: str
    fn: Callable
    platform: str | None
    supports: Callable[..., bool]
    available: Callable[[], bool]
    doc: str
    native: bool = False


@dataclasses.dataclass(frozen=True)
class Switches:
    """The state the switches set (hashable: it is part of JAX's ``jit`` cache key)."""

    conv_strategy: str = "auto"
    excluded: frozenset = frozenset()


_switches = jax.make_user_context(Switches())
_impls: dict[str, dict[str, Implementation]] = {op: {} for op in OPS}
_rules: dict[tuple[str, str], Callable[..., str | None]] = {}


def _check_op(op: str, fn: str) -> None:
    if op not in SIGNATURES:
        raise ValueError(f"{fn}: unknown op {op!r}; allowed: {', '.join(map(repr, OPS))}")


def register(op: str, name: str, fn: Callable, *, platform: str | None, supports: Callable[..., bool] | None = None,
             available: Callable[[], bool] | None = None, doc: str = "", native: bool = False) -> None:
    """Register ``fn`` as implementation ``name`` of ``op`` (signature: ``SIGNATURES[op]``) on ``platform``.

    ``native``: it runs as a foreign (custom) call, which XLA's partitioner cannot split across devices
    (see :func:`partitionable`).
    """
    _check_op(op, "register")
    if name == LAX:
        raise ValueError(f"register: {LAX!r} names the op's own lax maths and cannot be registered")
    _impls[op][name] = Implementation(op, name, fn, platform, supports or (lambda **_: True),
                                      available or (lambda: True), doc, native)


def register_rule(op: str, platform: str, rule: Callable[..., str | None]) -> None:
    """Set how ``op`` chooses on ``platform`` when no strategy is named: ``rule(usable, **geometry)`` returns an
    implementation's name or ``None`` (the lax maths); ``usable(name)`` says whether that one may be taken."""
    _check_op(op, "register_rule")
    _rules[op, platform] = rule


def implementations(op: str) -> dict[str, Implementation]:
    """The implementations registered for ``op``, by name."""
    _check_op(op, "implementations")
    return dict(_impls[op])


def switches() -> Switches:
    """The switches in force where this is called (inside a trace: the ones the trace was keyed on)."""
    return _switches.value


def _platform() -> str:
    return jax.default_backend()


def usable(op: str, name: str, platform: str | None = None) -> bool:
    """Whether ``op``'s implementation ``name`` may be chosen automatically here: registered for this platform,
    not excluded by :func:`excluding`, and available."""
    impl = _impls[op].get(name)
    platform = platform or _platform()
    return (impl is not None and impl.platform in (None, platform) and name not in switches().excluded
            and impl.available())


def strategies(op: str) -> tuple[str, ...]:
    """Every name ``op`` accepts as a strategy: ``"auto"``, ``"lax"`` and the registered implementations."""
    return ("auto", LAX, *_impls[op])


def choose(op: str, strategy: str = "auto", *, fn: str = "choose", **geometry: Any) -> str:
    """The name of the implementation ``op`` runs for this ``geometry`` here: a registered one, or ``"lax"``.

    ``strategy`` is what the caller asked for: ``"auto"`` (then :func:`conv_strategy`'s choice for convs, else the
    platform's rule), ``"lax"``, or a registered name, which must support ``geometry`` and be available (else a
    ``ValueError`` naming ``fn``). A :func:`conv_strategy` of ``"lax"`` sends every op to its lax maths.
    """
    _check_op(op, fn)
    if strategy not in strategies(op):
        raise ValueError(f"{fn}: unknown strategy {strategy!r}; allowed: {', '.join(map(repr, strategies(op)))}")
    forced = switches().conv_strategy
    if strategy == "auto" and (op == "conv" or forced == LAX):
        strategy = forced
    if strategy == "auto":
        rule = _rules.get((op, _platform()))
        name = None if rule is None else rule(lambda name: usable(op, name), **geometry)
        return name if name not in (None, LAX) and usable(op, name) else LAX
    if strategy == LAX:
        return LAX
    impl = _impls[op][strategy]
    if impl.platform not in (None, _platform()):
        raise ValueError(f"{fn}: strategy={strategy!r} runs on the {impl.platform!r} backend only; "
                         f"the default backend is {_platform()!r}")
    if not impl.supports(**geometry):
        raise ValueError(f"{fn}: strategy={strategy!r} cannot compute this case: {impl.doc or strategy} "
                         f"(got {', '.join(f'{k}={v!r}' for k, v in geometry.items())})")
    if not impl.available():
        why = unavailable_reason(strategy) or "it is not available here"
        raise ValueError(f"{fn}: strategy={strategy!r} is unavailable here: {why}")
    return strategy


def implementation(op: str, strategy: str = "auto", *, fn: str, **geometry: Any) -> Callable | None:
    """What ``op`` runs for this ``geometry``: the chosen implementation's callable (``SIGNATURES[op]``), or
    ``None`` for its own lax maths. See :func:`choose`."""
    name = choose(op, strategy, fn=fn, **geometry)
    return None if name == LAX else _impls[op][name].fn


_unavailable: dict[str, Callable[[], str]] = {}


def register_reason(name: str, reason: Callable[[], str | None]) -> None:
    """``reason()`` says why implementations called ``name`` are unavailable (``None`` when they are)."""
    _unavailable[name] = reason


def unavailable_reason(name: str) -> str | None:
    """Why implementations called ``name`` cannot run here, or ``None`` (also for a name with no registered reason)."""
    reason = _unavailable.get(name)
    return None if reason is None else reason()


@contextlib.contextmanager
def conv_strategy(strategy: str) -> Iterator[None]:
    """Use ``strategy`` for every ``conv`` in the block that does not name its own.

    ``"lax"`` sends every op (conv, conv_transpose, max_pool, batch_norm) to its own ``lax`` maths, so the traced
    graph holds ``conv_general_dilated`` for every conv and ``reduce_window`` for every pool: what jaxpr readers
    such as ``cnnjax.inspect.receptive_field`` follow, and the reference the faster implementations are tested
    against. The switch is part of JAX's ``jit`` cache key, so it also takes effect on functions jitted before.

    Example:
      >>> x, w = jnp.ones((2, 8, 8, 1)), jnp.ones((3, 3, 1, 4))
      >>> from cnnjax.functional import conv
      >>> with conv_strategy("lax"):
      ...     y = conv(x, w)
      >>> bool(jnp.allclose(y, conv(x, w)))
      True
    """
    if strategy not in strategies("conv"):
        raise ValueError(f"conv_strategy: unknown strategy {strategy!r}; "
                         f"allowed: {', '.join(map(repr, strategies('conv')))}")
    with _switches(dataclasses.replace(switches(), conv_strategy=strategy)):
        yield


@contextlib.contextmanager
def excluding(*names: str) -> Iterator[None]:
    """Inside the block, automatic choices take none of the implementations called ``names`` (for any op).

    Example: ``with excluding("im2col", "taps"):`` keeps those conv implementations out of the block's choices.
    Part of JAX's ``jit`` cache key, like :func:`conv_strategy`.
    """
    with _switches(dataclasses.replace(switches(), excluded=switches().excluded | frozenset(names))):
        yield


@contextlib.contextmanager
def partitionable() -> Iterator[None]:
    """Inside the block, automatic choices take only implementations made of XLA's own ops, which XLA's partitioner
    splits along a sharded batch; it would gather a native kernel's operands and run it whole on every device."""
    with excluding(*{i.name for impls in _impls.values() for i in impls.values() if i.native}):
        yield


def compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA compiler options under which the registered implementations on ``backend`` (default: JAX's) run fastest.

    cnnjax's training and evaluation steps compile with them; pass them to your own top-level ``jax.jit`` for the
    same speed. They change which kernels run, not what is computed. Empty where no backend registered any.

    Example:
      >>> step = jax.jit(lambda x: x + 1, compiler_options=compiler_options() or None)
      >>> int(step(1))
      2
    """
    options = _options.get(backend or _platform())
    return dict(options()) if options else {}


_options: dict[str, Callable[[], dict[str, str]]] = {}


def register_compiler_options(platform: str, options: Callable[[], dict[str, str]]) -> None:
    """``options()`` gives the XLA compiler options for :func:`compiler_options` on ``platform``."""
    _options[platform] = options


_rewrites: dict[str, Callable[[Callable], Callable]] = {}


def register_rewrite(platform: str, rewrite: Callable[[Callable], Callable]) -> None:
    """``rewrite(fn)`` returns a function computing ``fn``'s values with fused kernels on ``platform``; applied by
    :func:`fused`."""
    _rewrites[platform] = rewrite


def fused(fn: Callable) -> Callable:
    """``fn`` with the platform's fusions applied when it is traced (the same values; derivatives to float rounding).

    cnnjax's training and evaluation steps wrap their loss in it, so a model written layer by layer
    (``relu(bn(x) + shortcut)``, ``Sequential(conv, relu, pool)``) gets the backend's fused kernels without naming
    them. Where no backend registered a rewrite it returns ``fn`` unchanged; under ``conv_strategy("lax")`` too.
    """
    def run(*args, **kwargs):
        rewrite = _rewrites.get(_platform())
        if rewrite is None or switches().conv_strategy == LAX:
            return fn(*args, **kwargs)
        return rewrite(fn)(*args, **kwargs)
    return run
