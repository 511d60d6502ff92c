"""Run-directory metrics: JSONL and CSV per evaluation, TensorBoard if installed, a PNG of the curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Appends one row per evaluation to ``metrics.jsonl`` and ``metrics.csv`` (and TensorBoard when available).

    ``enabled=False`` writes nothing: the other processes of a multi-process run.
    """

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        try:  # optional: tensorboardX or torch's writer, whichever is installed
            from tensorboardX import SummaryWriter  # type: ignore
        except ImportError:
            try:
                from torch.utils.tensorboard import SummaryWriter  # type: ignore
            except ImportError:
                SummaryWriter = None
        if SummaryWriter is not None:
            try:
                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except Exception:  # tensorboard itself may be missing behind torch's wrapper
                self.tb = None

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Write the whole history (used on resume, so files match the restored state)."""
        if not self.enabled:
            return
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in history))
        with self.csv.open("w", newline="") as f:
            if history:
                w = csv.DictWriter(f, fieldnames=list(history[0]))
                w.writeheader()
                w.writerows(history)

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        with self.csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss and accuracy against step, train and test, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(steps, [r["train_loss"] for r in history], label="train")
    a.plot(steps, [r["test_loss"] for r in history], label="test")
    a.set(xlabel="step", ylabel="cross-entropy", title="loss", yscale="log")
    b.plot(steps, [r["train_acc"] for r in history], label="train")
    b.plot(steps, [r["test_acc"] for r in history], label="test")
    b.set(xlabel="step", ylabel="accuracy", title="top-1 accuracy", ylim=(0, 1))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
