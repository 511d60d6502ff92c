"""Optimizers and learning-rate schedules by name, built from optax."""

from __future__ import annotations

import optax

from cnnjax.train.config import TrainConfig

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")


def make_schedule(cfg: TrainConfig, total_steps: int) -> optax.Schedule:
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.lr)
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.lr, max(total_steps, 1))
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.lr, cfg.warmup_steps, max(total_steps, cfg.warmup_steps + 1))
    if cfg.schedule == "step":  # divide by 10 at 50% and 75% of training
        return optax.piecewise_constant_schedule(cfg.lr, {total_steps // 2: 0.1, (3 * total_steps) // 4: 0.1})
    raise ValueError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")


def make_optimizer(cfg: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """The optimizer a config names, with its schedule, weight decay and gradient clipping.

    ``adamw`` decouples weight decay; the others add ``weight_decay * params`` to the gradient (L2).
    """
    lr = make_schedule(cfg, total_steps)
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    parts = []
    if cfg.grad_clip:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    if cfg.weight_decay and cfg.optimizer != "adamw":
        parts.append(optax.add_decayed_weights(cfg.weight_decay))
    parts.append({
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, cfg.momentum),
        "nesterov": lambda: optax.sgd(lr, cfg.momentum, nesterov=True),
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=cfg.weight_decay),
    }[cfg.optimizer]())
    return optax.chain(*parts)
