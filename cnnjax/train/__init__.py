"""Training: optax optimizers, a jitted step on device-resident data, orbax checkpoints with exact resume."""

from cnnjax.train.checkpoint import CheckpointError
from cnnjax.train.config import TrainConfig
from cnnjax.train.ensemble import EnsembleResult, fit_ensemble
from cnnjax.train.loop import FitResult, TrainingError, build_model, evaluate, fit
from cnnjax.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer
from cnnjax.train.sweep import SweepResult, group_stats, parse_grid, run_sweep

__all__ = [
    "CheckpointError", "EnsembleResult", "FitResult", "fit_ensemble", "OPTIMIZERS", "SCHEDULES", "TrainConfig", "TrainingError", "build_model",
    "evaluate", "fit", "make_optimizer", "SweepResult", "group_stats", "parse_grid", "run_sweep",
]
