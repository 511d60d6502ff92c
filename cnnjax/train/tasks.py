"""What a run learns: classification, segmentation or detection. Each task says how to build the
targets from a dataset, which output shape the model must have, the per-example loss, and what
counts as a correct prediction (top-1 per example, per pixel, or per object cell).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.detection import yolo_loss, yolo_targets
from cnnjax.segmentation import dice_loss, pixel_cross_entropy

LOSSES = {"classify": ("cross_entropy",), "segment": ("cross_entropy", "dice"), "detect": ("yolo",)}  # first: the default
TASKS = tuple(LOSSES)


@dataclasses.dataclass(frozen=True)
class Objective:
    """The task's loss and metrics for the training and evaluation steps.

    ``loss(logits, y) -> (B,)``; ``metrics(logits, y) -> (correct, top5_correct, count)``.
    """

    task: str = "classify"
    loss_name: str = "cross_entropy"
    label_smoothing: float = 0.0
    boxes_per_cell: int = 2

    def loss(self, logits, y):
        if self.task == "classify":
            targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), self.label_smoothing)
            return optax.softmax_cross_entropy(logits, targets)
        if self.task == "segment":
            fn = dice_loss if self.loss_name == "dice" else pixel_cross_entropy
            return fn(logits, y, spatial_dims=y.ndim - 1)
        return yolo_loss(logits, y, self.boxes_per_cell)

    def metrics(self, logits, y):
        if self.task == "classify":
            top5 = jnp.argsort(logits, -1)[..., -min(5, logits.shape[-1]):]
            return (jnp.sum(jnp.argmax(logits, -1) == y), jnp.sum(jnp.any(top5 == y[..., None], -1)),
                    jnp.asarray(y.shape[0], jnp.int32))
        if self.task == "segment":
            correct = jnp.sum(jnp.argmax(logits, -1) == y)
            return correct, correct, jnp.asarray(y.size, jnp.int32)
        # detection: the class of each cell that holds an object
        obj = y[..., 4] > 0
        guess = jnp.argmax(logits[..., 5 * self.boxes_per_cell :], -1)
        correct = jnp.sum(obj & (guess == y[..., 5].astype(jnp.int32)))
        return correct, correct, jnp.sum(obj).astype(jnp.int32)


def check_task(task: str, loss: str) -> str:
    """The loss name to use (the task's default for ``""``); a one-line error for unknown tasks or losses."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if loss and loss not in LOSSES[task]:
        raise ValueError(f"loss {loss!r} does not fit task {task!r}; choose from {', '.join(LOSSES[task])}")
    return loss or LOSSES[task][0]


def objective(cfg: Any, model: Any = None) -> Objective:
    """The :class:`Objective` of a ``TrainConfig`` (the detection task reads ``boxes_per_cell`` from the model)."""
    name = check_task(cfg.task, cfg.loss)
    return Objective(cfg.task, name, cfg.label_smoothing, int(getattr(model, "boxes", 2)))


def model_classes(task: str, num_classes: int) -> int:
    """Outputs per position the model needs: segmentation adds a background class (mask value 0)."""
    return num_classes + 1 if task == "segment" else num_classes


def targets(task: str, ds: Any, split: str, model: Any = None) -> np.ndarray:
    """The training targets of ``ds`` (an :class:`~cnnjax.data.ArrayDataset`) for ``split``.

    classify: the labels. segment: ``extras[split]["mask"]``. detect: YOLO grid targets
    ``(N, S, S, 6)`` from ``boxes``/``classes``, for the model's ``grid``.
    """
    labels = ds.y_train if split == "train" else ds.y_test
    if task == "classify":
        return labels
    check_dataset(task, ds)
    extras = ds.extras[split]
    if task == "segment":
        return extras["mask"].astype(np.int32)
    check_model(task, model)
    size = ds.input_shape[:2]
    make = jax.jit(jax.vmap(lambda b, c: yolo_targets(b, c, model.grid, size)))
    return np.asarray(make(extras["boxes"], extras["classes"]))


def check_dataset(task: str, ds: Any) -> None:
    """Segmentation needs the dataset's ``mask`` feature, detection its ``boxes`` and ``classes``."""
    need = {"classify": (), "segment": ("mask",), "detect": ("boxes", "classes")}[task]
    have = set.intersection(*(set(ds.extras.get(s, {})) for s in ("train", "test")))
    if not set(need) <= have:
        raise ValueError(f"task {task!r} needs the dataset's {' and '.join(need)} features; {ds.name!r} has "
                         f"{sorted(have) or 'none'} besides inputs and labels (cnnjax's 'shapes' has both)")


def check_model(task: str, model: Any) -> None:
    """Detection needs a YOLO-style model: one with a ``grid`` (and ``boxes`` per cell)."""
    if task == "detect" and not hasattr(model, "grid"):
        raise ValueError(f"task 'detect' needs a YOLO-style model with a grid (e.g. yolo_v1), got {type(model).__name__}")


def expected_output(task: str, model: Any, input_shape: tuple[int, ...], num_classes: int) -> tuple[int, ...]:
    """The output shape (without the batch axis) the task needs from the model."""
    check_model(task, model)
    if task == "classify":
        return (num_classes,)
    if task == "segment":
        return tuple(input_shape[:-1]) + (num_classes,)
    grid, boxes = getattr(model, "grid", None), getattr(model, "boxes", 2)
    return (grid, grid, boxes * 5 + num_classes)
