"""What an ensemble adds to a run: K members stacked along a leading axis, each with its own seed, data order,
learning rate and weight decay. The training loop (:mod:`cnnjax.train.loop`) is the same for one run and K members.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cnnjax.data import InMemoryBatches
from cnnjax.train.config import TrainConfig
from cnnjax.train.step import new_state

Member = tuple[int, float, float]  # (seed, lr, weight_decay)


def member_grid(cfg: TrainConfig, seeds: Sequence[int], lr: Sequence[float] | None = None,
                weight_decay: Sequence[float] | None = None) -> list[Member]:
    """Every ``(seed, lr, weight_decay)`` member of an ensemble, in order; ``lr``/``weight_decay`` default to the config's."""
    lrs = list(lr) if lr is not None else [cfg.lr]
    wds = list(weight_decay) if weight_decay is not None else [cfg.weight_decay]
    return list(itertools.product(list(seeds), lrs, wds))


def member_records(grid: Sequence[Member]) -> list[dict[str, Any]]:
    """The members as ``members.json`` stores them, which a resume (or a sweep's resume check) compares."""
    return [{"seed": s, "lr": a, "weight_decay": w} for s, a, w in grid]


def init_members(create: Callable[[jax.Array], nnx.Module], grid: Sequence[Member],
                 tx: optax.GradientTransformation) -> dict:
    """The training state of every member, stacked: member ``(seed, lr, wd)`` starts as a single run with
    that seed would (``create(jax.random.key(seed))``), its ``lr`` and ``wd`` held in the optimizer state
    (``tx`` from :func:`cnnjax.train.optim.make_injectable_optimizer`)."""

    def init(seed, lr, wd):
        model = create(jax.random.key(seed))
        model.train()
        _, params, rest = nnx.split(model, nnx.Param, ...)
        state = new_state(params, rest, tx, seed)
        state["opt_state"].hyperparams["learning_rate"] = lr
        state["opt_state"].hyperparams["weight_decay"] = wd
        return state

    columns = [jnp.array([g[j] for g in grid], dtype) for j, dtype in enumerate((jnp.int32, jnp.float32, jnp.float32))]
    return jax.jit(jax.vmap(init))(*columns)


class MemberBatches:
    """A batch provider (:class:`cnnjax.data.InMemoryBatches` or :class:`cnnjax.data.GrainBatches`) for K
    members: member ``m`` sees the batches a single run with ``seeds[m]`` would see.

    Each step's arguments ``(x, y, perm, i)`` come stacked over members where they differ, as ``in_axes``
    says: on-device data is shared and only the permutations are stacked; streamed batches are stacked.
    """

    def __init__(self, base: Any, seeds: Sequence[int]):
        self.providers = []
        for s in seeds:  # providers differ only in the seed that orders an epoch
            p = copy.copy(base)
            p.seed = int(s)
            self.providers.append(p)
        self.steps_per_epoch = base.steps_per_epoch
        self.in_axes = (None, None, 0, None) if isinstance(base, InMemoryBatches) else (0, 0, None, None)

    def epoch(self, epoch: int, start: int, stop: int) -> Iterator[tuple]:
        for parts in zip(*(p.epoch(epoch, start, stop) for p in self.providers)):
            yield tuple(parts[0][j] if axis is None else jnp.stack([q[j] for q in parts])
                        for j, axis in enumerate(self.in_axes))

    def test_batches(self, batch: int = 1000) -> Iterator[tuple]:
        return self.providers[0].test_batches(batch)  # the same test data for every member
