"""The pure, jitted training and evaluation steps.

The model is split once into a graph definition and state; a step is a function of
``(state, data, permutation, index)`` that gathers its batch on the device, so the host
only dispatches. Metrics accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cnnjax.functional import dispatch
from cnnjax.functional.dispatch import compiler_options
from cnnjax.train.tasks import Objective


def jit_step(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with :func:`cnnjax.functional.compiler_options` (XLA:CPU's
    multi-threaded convolutions); every step cnnjax trains or evaluates with goes through it.

    JAX takes compiler options on top-level calls only, so traced inside another ``jit``,
    ``vmap`` or ``scan`` the function runs as a plain ``jax.jit`` (whose options the outer call decides).
    ``lower``, ``trace`` and ``eval_shape`` are the tuned function's.
    """
    options = compiler_options()
    return _TopLevelJit(fn, options, kwargs) if options else jax.jit(fn, **kwargs)


class _TopLevelJit:
    def __init__(self, fn: Callable, options: dict, kwargs: dict):
        self._tuned = jax.jit(fn, compiler_options=options, **kwargs)
        self._plain = jax.jit(fn, **kwargs)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        try:
            return self._tuned(*args, **kwargs)
        except ValueError as e:  # raised while staging, before anything ran
            if "compiler_options" not in str(e):
                raise
            return self._plain(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tuned, name)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> tuple[Any, Any, dict]:
    """``(train_graphdef, eval_graphdef, state)``; ``state`` holds params, the rest (batch stats, RNG streams),
    the optimizer state, the step counter and the metric accumulators."""
    eval_def = eval_graph_def(model)
    train_def, params, rest = nnx.split(model, nnx.Param, ...)
    return train_def, eval_def, new_state(params, rest, tx, seed)


def eval_graph_def(model: nnx.Module) -> Any:
    """The graph definition of ``model`` in eval mode, split as ``(Param, rest)``; the model is left in train mode."""
    model.eval()
    eval_def = nnx.split(model, nnx.Param, ...)[0]
    model.train()
    return eval_def


def finite_params(params: Any, members: tuple[int, ...] = ()) -> np.ndarray:
    """Whether every parameter is finite: one bool, or one per member for parameters stacked ``(*members, ...)``."""
    return np.logical_and.reduce([np.asarray(jnp.isfinite(x).reshape(members + (-1,)).all(-1))
                                  for x in jax.tree.leaves(params)])


def new_state(params: Any, rest: Any, tx: optax.GradientTransformation, seed: Any) -> dict:
    """A fresh training state; ``seed`` (an int or traced int) keys the on-device augmentation."""
    return {"params": params, "rest": rest, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
            "seed": jnp.asarray(seed, jnp.int32), "acc": zero_metrics()}


COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_dtype(name: str) -> Any:
    """``jnp.float32`` or ``jnp.bfloat16`` from its name; a clear error otherwise."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
    return jnp.dtype(name)


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Cast the floating-point leaves of ``tree`` to ``dtype`` (integers, keys and ``None`` untouched)."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def zero_metrics() -> dict[str, jax.Array]:
    """Running sums over an epoch: loss over ``seen`` examples, ``correct`` over ``count`` scored units
    (examples, pixels or object cells, by task)."""
    return {"loss": jnp.zeros(()), "seen": jnp.zeros((), jnp.int32), "correct": jnp.zeros((), jnp.int32),
            "count": jnp.zeros((), jnp.int32), "first_bad_step": jnp.full((), -1, jnp.int32)}


def make_train_step(
    train_def: Any,
    tx: optax.GradientTransformation,
    batch_size: int,
    label_smoothing: float = 0.0,
    *,
    augment: Callable | None = None,
    batch_sharding: Any = None,
    compute_dtype: str = "float32",
    objective: Objective | None = None,
    jit: bool = True,
) -> Callable:
    """The ``(state, x_all, y_all, perm, i) -> state`` step, jitted with ``state`` donated (``jit=False``: the
    plain function, e.g. to vmap an ensemble).

    ``augment(key, batch)`` runs on the device with a key from ``(state['seed'], step)``, so a
    resumed run draws the same augmentations. ``batch_sharding`` (a ``NamedSharding``) splits
    the batch across devices; parameters stay as they are placed (replicated).

    ``compute_dtype="bfloat16"`` is mixed precision: the forward and backward passes run on
    bfloat16 copies of the parameters and inputs, while the parameters, their gradients, the
    optimizer state, the loss and the normalisation statistics stay float32.

    ``objective`` (see :mod:`cnnjax.train.tasks`) gives the loss and what counts as correct;
    the default is classification with softmax cross-entropy and ``label_smoothing``.
    """
    dtype = check_compute_dtype(compute_dtype)
    objective = objective or Objective(label_smoothing=label_smoothing)

    def loss_fn(params, rest, x, y):
        if dtype != jnp.float32:
            params, x = cast_floating(params, dtype), x.astype(dtype)
        model = nnx.merge(train_def, params, rest, copy=True)  # fresh Variables at this trace level, so BatchNorm may update them
        logits = model(x).astype(jnp.float32)
        loss = objective.loss(logits, y).mean()
        return loss, (logits, nnx.split(model, nnx.Param, ...)[2])

    def step(state, x_all, y_all, perm, i):
        idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
        x, y = x_all[idx], y_all[idx]
        if batch_sharding is not None:
            x = jax.lax.with_sharding_constraint(x, batch_sharding)
            y = jax.lax.with_sharding_constraint(y, batch_sharding)
        if augment is not None:
            x = augment(jax.random.fold_in(jax.random.key(state["seed"]), state["step"]), x)
        # a batch split across devices keeps XLA's own ops, which XLA partitions; it would run a native kernel whole on each
        with contextlib.nullcontext() if batch_sharding is None else dispatch.partitionable():
            (loss, (logits, rest)), grads = jax.value_and_grad(dispatch.fused(loss_fn), has_aux=True)(
                state["params"], state["rest"], x, y)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        acc = state["acc"]
        bad = ~jnp.isfinite(loss)
        correct, _, count = objective.metrics(logits, y)
        acc = {
            "loss": acc["loss"] + loss * batch_size,
            "seen": acc["seen"] + batch_size,
            "correct": acc["correct"] + correct,
            "count": acc["count"] + count,
            "first_bad_step": jnp.where((acc["first_bad_step"] < 0) & bad, state["step"], acc["first_bad_step"]),
        }
        return {**state, "params": params, "rest": rest, "opt_state": opt_state, "step": state["step"] + 1, "acc": acc}

    return jit_step(step, donate_argnums=0) if jit else step


def make_eval_step(eval_def: Any, compute_dtype: str = "float32", jit: bool = True,
                   objective: Objective | None = None) -> Callable:
    """``(params, rest, x, y) -> (loss_sum, top1_correct, top5_correct, count)`` over one batch, in eval mode.

    ``count`` is what the accuracies are out of: examples, pixels or object cells (see ``objective``).
    """
    dtype = check_compute_dtype(compute_dtype)
    objective = objective or Objective()

    def evaluate(params, rest, x, y):
        if dtype != jnp.float32:
            params, x = cast_floating(params, dtype), x.astype(dtype)
        logits = nnx.merge(eval_def, params, rest, copy=True)(x).astype(jnp.float32)
        return (objective.loss(logits, y).sum(), *objective.metrics(logits, y))

    evaluate = dispatch.fused(evaluate)
    return jit_step(evaluate) if jit else evaluate

