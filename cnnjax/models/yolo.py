"""A YOLO-v1-style detector (Redmon et al. 2016): an S x S grid, B boxes per cell, class scores."""

from __future__ import annotations

import jax
from flax import nnx

from cnnjax import functional as F
from cnnjax import nn
from cnnjax.models.base import Model
from cnnjax.models.registry import register


class YOLOv1(Model):
    """Conv backbone (3x3 conv + BatchNorm + leaky ReLU, 2x2 max pools), pooled to the ``grid x grid``
    cells, then a conv head with ``boxes * 5 + num_classes`` outputs per cell.

    Output ``(*batch, grid, grid, boxes * 5 + num_classes)``: for each cell, ``boxes`` groups of
    ``(x, y, w, h, confidence)`` then the class scores, raw (the loss and decoding apply the
    nonlinearities). ``features``: ``stage1``.., ``grid`` (pooled), ``pre_logits``.
    """

    head_path = ("head",)

    def __init__(self, num_classes, in_channels, rngs, *, grid=7, boxes=2, width=32, stages=4):
        self.grid, self.boxes, self.num_classes = grid, boxes, num_classes

        def block(a, b):
            return [nn.Conv(a, b, (3, 3), padding=1, use_bias=False, rngs=rngs), nn.BatchNorm(b),
                    lambda x: jax.nn.leaky_relu(x, 0.1)]

        widths = [width * 2**i for i in range(stages)]
        self.stages = nnx.List([nnx.Sequential(*block(a, b), nn.MaxPool((2, 2)))
                                for a, b in zip([in_channels] + widths[:-1], widths)])
        self.neck = nnx.Sequential(*block(widths[-1], 2 * widths[-1]), *block(2 * widths[-1], 2 * widths[-1]))
        self.head = nn.Conv(2 * widths[-1], boxes * 5 + num_classes, (1, 1), rngs=rngs)

    def forward(self, x):
        features = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            features[f"stage{i + 1}"] = x
        x = F.adaptive_avg_pool(x, (self.grid, self.grid))
        features["grid"] = x
        x = self.neck(x)
        features["pre_logits"] = x
        return self.head(x), features


@register()
def yolo_v1(*, num_classes: int = 20, in_channels: int = 3, grid: int = 7, boxes: int = 2, width: int = 32,
            stages: int = 4, rngs: nnx.Rngs) -> YOLOv1:
    """A compact YOLO-v1-style detector: ``grid x grid`` cells x (``boxes`` x (x, y, w, h, conf) + classes)."""
    return YOLOv1(num_classes, in_channels, rngs, grid=grid, boxes=boxes, width=width, stages=stages)
