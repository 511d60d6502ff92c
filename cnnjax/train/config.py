"""Training configuration: one dataclass, overridable from a YAML or Python config file and CLI flags."""

from __future__ import annotations

import dataclasses
import json
import runpy
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on. The defaults are the main job: MNIST-1D ConvBase, Adam 1e-2, batch 100."""

    model: str = "mnist1d_convbase"
    dataset: str = "mnist1d"
    task: str = "classify"  # classify | segment (the dataset's masks) | detect (its boxes, YOLO-style model)
    loss: str = ""  # the task's default: cross_entropy; segment also takes dice; detect uses yolo
    epochs: int = 150
    steps: int | None = None  # overrides epochs when set
    batch_size: int = 100
    optimizer: str = "adam"  # sgd | momentum | nesterov | adam | adamw
    lr: float = 1e-2
    schedule: str = "constant"  # constant | cosine | warmup_cosine | step
    warmup_steps: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float | None = None  # global-norm clipping
    label_smoothing: float = 0.0
    compute_dtype: str = "float32"  # float32 | bfloat16 (mixed precision: float32 params, optimizer and norm statistics)
    seed: int = 0
    augment: str = ""  # e.g. "crop,flip" (see cnnjax.data.AUGMENTATIONS)
    num_devices: int | None = None  # data parallelism over this many local devices (default: all)
    stream: bool | None = None  # stream through Grain instead of holding the data on the device (default: above 1 GB)
    data_dir: str | None = None
    run_dir: str | None = None
    checkpoint_every: int = 1000  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 3
    eval_every: int = 1  # epochs
    model_options: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.merge(cls(), json.loads(Path(path).read_text()))

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> "TrainConfig":
        """The config saved in a run directory, with ``run_dir`` set to that folder as given, wherever the run was
        made: a copied or moved run resumes where it now is, never in the folder it was copied from."""
        return dataclasses.replace(cls.load(Path(run_dir) / "config.json"), run_dir=str(run_dir))

    @classmethod
    def merge(cls, base: "TrainConfig", overrides: dict[str, Any]) -> "TrainConfig":
        """``base`` with ``overrides`` applied; unknown keys and wrong types are errors (OmegaConf checks them)."""
        merged = OmegaConf.merge(OmegaConf.structured(base), OmegaConf.create(overrides))
        return cls(**OmegaConf.to_container(merged, resolve=True))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a YAML file (``key: value``) or a Python file defining ``get_config()`` (a dict or TrainConfig)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        if path.suffix == ".py":
            cfg = runpy.run_path(str(path))["get_config"]()
            return cfg if isinstance(cfg, cls) else cls.merge(cls(), dict(cfg))
        return cls.merge(cls(), OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {})
