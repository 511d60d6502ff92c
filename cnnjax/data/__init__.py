"""Datasets through TFDS without TensorFlow: offline builders (mnist1d, digits, rotated_digits, shapes, shape_windows) and catalog names."""

from cnnjax.data.augment import AUGMENTATIONS, augment, tta_predict
from cnnjax.data.builders import (
    BUILDERS,
    SHAPE_NAMES,
    Digits,
    Mnist1d,
    RotatedDigits,
    Shapes,
    ShapeWindows,
    draw_shapes,
    rotated_digit_images,
    shape_windows,
)
from cnnjax.data.stream import STREAM_THRESHOLD_BYTES, GrainBatches, InMemoryBatches, dataset_bytes
from cnnjax.data.load import ArrayDataset, DatasetNotFoundError, builder, default_data_dir, load_arrays

__all__ = [
    "AUGMENTATIONS", "augment", "tta_predict", "GrainBatches", "InMemoryBatches", "STREAM_THRESHOLD_BYTES",
    "dataset_bytes",
    "ArrayDataset", "BUILDERS", "DatasetNotFoundError", "Digits", "Mnist1d", "RotatedDigits", "ShapeWindows", "Shapes", "builder",
    "default_data_dir", "draw_shapes", "load_arrays", "rotated_digit_images", "shape_windows", "SHAPE_NAMES",
]
