"""Stand-ins for timm checkpoints, made without timm: timm's own tensor names and shapes (recorded from timm 1.0.31
in ``data/timm_checkpoints.json``) filled with seeded values, and the logits timm computed from exactly those values."""

import json
from pathlib import Path

import numpy as np

LOGITS_SHOWN = 16  # the first classes' logits are stored; a wrong tensor anywhere upstream moves them all
RECORDED = Path(__file__).parent / "data" / "timm_checkpoints.json"


def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def fake_state_dict(keys: list) -> dict[str, np.ndarray]:
    """Seeded values for ``[[name, shape], ...]`` that keep a deep network's activations in range."""
    rng = np.random.default_rng(0)
    out = {}
    for name, shape in keys:
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[name] = np.zeros(shape, np.int64)
        elif leaf == "running_var":
            out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif leaf == "gamma":
            out[name] = rng.uniform(0.3, 0.7, shape).astype(np.float32)
        elif leaf in ("running_mean", "bias"):
            out[name] = rng.normal(0, 0.1, shape).astype(np.float32)
        elif len(shape) == 1:  # a norm's scale
            out[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[name] = rng.normal(0, np.sqrt(1.0 / np.prod(shape[1:])), shape).astype(np.float32)
    return out


def example_input() -> np.ndarray:
    """``(2, 64, 64, 3)``, channels-last."""
    return np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
