"""Loading datasets through TFDS (no TensorFlow): cnnjax's offline builders or any catalog name."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

import numpy as np
import tensorflow_datasets as tfds

from cnnjax.data.builders import BUILDERS


def default_data_dir() -> str:
    """``$CNNJAX_DATA_DIR``, else ``$TFDS_DATA_DIR``, else TFDS's default ``~/tensorflow_datasets``."""
    return os.environ.get("CNNJAX_DATA_DIR") or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


class DatasetNotFoundError(ValueError):
    """The dataset is neither one cnnjax can make offline nor prepared in ``data_dir``."""


@contextlib.contextmanager
def _quiet_absl():
    """TFDS warns through absl that an unprepared folder has no dataset_info.json: expected here, not news."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The TFDS builder for ``name``, prepared as ``array_record``.

    cnnjax's own datasets (``mnist1d``, ``digits``, ``rotated_digits``, ``shapes``) are generated on first use.
    Catalog datasets must already be prepared in ``data_dir``: nothing is downloaded at run time.
    """
    data_dir = data_dir or default_data_dir()
    if name in BUILDERS:
        with _quiet_absl():
            b = BUILDERS[name](data_dir=data_dir, file_format="array_record")
            if not b.is_prepared():
                b.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
        return b
    try:
        with _quiet_absl():
            b = tfds.builder(name, data_dir=data_dir, file_format="array_record")
            prepared = b.is_prepared()
    except Exception as e:  # unknown to the TFDS catalog
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}: cnnjax makes {', '.join(sorted(BUILDERS))} offline; any TFDS catalog "
            f"name (mnist, fashion_mnist, cifar10, ...) works once prepared. TFDS said: {str(e).splitlines()[0]}"
        ) from None
    if not prepared:
        raise DatasetNotFoundError(
            f"dataset {name!r} is not prepared in {data_dir} (looked for {b.data_dir}), and cnnjax never downloads at "
            f"run time. Prepare it once where there is internet, as array_record:\n"
            f"  python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='{data_dir}', "
            f"file_format='array_record').download_and_prepare()\"\n"
            f"then pass --data-dir {data_dir} (or set CNNJAX_DATA_DIR)."
        )
    return b


@dataclasses.dataclass
class ArrayDataset:
    """A small dataset held in memory: inputs channels-last, integer labels, and train-split statistics."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: np.ndarray  # per channel, from the training split
    std: np.ndarray
    extras: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    standardized: bool = False  # whether normalized() made these inputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def normalized(self) -> "ArrayDataset":
        """Standardise both splits with the training split's per-channel mean and std."""
        if self.standardized:
            return self
        f = lambda x: ((x - self.mean) / self.std).astype(np.float32)  # noqa: E731
        return dataclasses.replace(self, x_train=f(self.x_train), x_test=f(self.x_test), standardized=True)

    def __repr__(self) -> str:
        """Shapes and value range, not the arrays; and whether the inputs still need ``.normalized()``."""
        lo, hi = (float(self.x_train.min()), float(self.x_train.max())) if self.x_train.size else (0.0, 0.0)
        state = ("standardised with the training split's mean and std" if self.standardized else
                 "values as stored, not standardised: call .normalized() before a hand-written training loop")
        extras = sorted({k for d in self.extras.values() for k in d})
        return (f"ArrayDataset({self.name!r}: x_train {self.x_train.shape} {self.x_train.dtype} in [{lo:g}, {hi:g}], "
                f"x_test {self.x_test.shape}, {self.num_classes} classes{', extras ' + ', '.join(extras) if extras else ''}; "
                f"{state})")


def as_model_input(x: np.ndarray, signal_ndim: int = 1) -> np.ndarray:
    """float32 inputs: ``uint8`` images scaled to ``[0, 1]``; signals without a channel axis
    (``signal_ndim`` dims from the end, e.g. ``(N, L)`` or one ``(L,)``) get one."""
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return x[..., None] if x.ndim == signal_ndim else x


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (plus 1e-8) over every axis but the last."""
    axes = tuple(range(x.ndim - 1))
    return x.mean(axis=axes), x.std(axis=axes) + 1e-8


def _read_split(b: tfds.core.DatasetBuilder, split: str) -> dict[str, np.ndarray]:
    source = b.as_data_source(split=split)
    records = source.__getitems__(list(range(len(source))))
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


def load_arrays(name: str, *, data_dir: str | None = None) -> ArrayDataset:
    """Load a dataset's train and test splits into memory (for datasets under about 1 GB).

    Inputs come back as float32 ``(N, *spatial, C)``; images in ``uint8`` are scaled to
    ``[0, 1]``, other values are as stored (``digits``: 0..16). They are not standardised:
    call ``.normalized()`` (the training split's per-channel mean and std) before a
    hand-written training loop; :func:`cnnjax.train.fit` does. Other features (boxes,
    masks...) are kept in ``extras[split]``.

    Example:
      >>> ds = load_arrays("digits")  # doctest: +SKIP
      >>> ds.x_train.shape, ds.num_classes  # doctest: +SKIP
      ((1437, 8, 8, 1), 10)
    """
    b = builder(name, data_dir)
    x_key, y_key = b.info.supervised_keys
    splits = {s: _read_split(b, s) for s in ("train", "test")}
    x = {s: as_model_input(d[x_key], signal_ndim=2) for s, d in splits.items()}
    mean, std = channel_stats(x["train"])
    extras = {s: {k: v for k, v in d.items() if k not in (x_key, y_key)} for s, d in splits.items()}
    return ArrayDataset(
        name=name, x_train=x["train"], y_train=splits["train"][y_key].astype(np.int32), x_test=x["test"],
        y_test=splits["test"][y_key].astype(np.int32), num_classes=b.info.features[y_key].num_classes,
        mean=mean, std=std, extras=extras,
    )
