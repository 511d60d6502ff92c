"""Optimizers and learning-rate schedules by name, built from optax."""

from __future__ import annotations

import optax

from cnnjax.train.config import TrainConfig

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")


def make_schedule(cfg: TrainConfig, total_steps: int, lr=None) -> optax.Schedule:
    """The config's schedule peaking at ``lr`` (default ``cfg.lr``; may be a traced array in sweeps)."""
    lr = cfg.lr if lr is None else lr
    if cfg.schedule == "constant":
        return optax.constant_schedule(lr)
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, max(total_steps, 1))
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, cfg.warmup_steps, max(total_steps, cfg.warmup_steps + 1))
    if cfg.schedule == "step":  # divide by 10 at 50% and 75% of training
        return optax.piecewise_constant_schedule(lr, {total_steps // 2: 0.1, (3 * total_steps) // 4: 0.1})
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")


def make_optimizer(cfg: TrainConfig, total_steps: int, *, lr=None, weight_decay=None, decay: bool | None = None) -> optax.GradientTransformation:
    """The optimizer a config names, with its schedule, weight decay and gradient clipping.

    ``adamw`` decouples weight decay; the others add ``weight_decay * params`` to the gradient (L2).
    ``lr``/``weight_decay`` override the config's values (arrays are fine, for
    ``optax.inject_hyperparams``); ``decay`` forces the weight-decay term in or out.
    """
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    decay = bool(cfg.weight_decay) if decay is None else decay
    schedule = make_schedule(cfg, total_steps, lr)
    parts = []
    if cfg.grad_clip:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    if decay and cfg.optimizer != "adamw":
        parts.append(optax.add_decayed_weights(wd))
    parts.append({
        "sgd": lambda: optax.sgd(schedule),
        "momentum": lambda: optax.sgd(schedule, cfg.momentum),
        "nesterov": lambda: optax.sgd(schedule, cfg.momentum, nesterov=True),
        "adam": lambda: optax.adam(schedule),
        "adamw": lambda: optax.adamw(schedule, weight_decay=wd if decay else 0.0),
    }[cfg.optimizer]())
    return optax.chain(*parts)


def make_injectable_optimizer(cfg: TrainConfig, total_steps: int, decay: bool) -> optax.GradientTransformation:
    """:func:`make_optimizer` with ``learning_rate`` and ``weight_decay`` held in the optimizer state,
    so members of a vmapped ensemble can each have their own (set them after ``init``)."""

    def build(learning_rate, weight_decay):
        return make_optimizer(cfg, total_steps, lr=learning_rate, weight_decay=weight_decay, decay=decay)

    return optax.inject_hyperparams(build)(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
