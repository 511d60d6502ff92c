"""Datasets through TFDS without TensorFlow: offline builders (mnist1d, digits, rotated_digits, shapes) and catalog names."""

from cnnjax.data.augment import AUGMENTATIONS, augment, tta_predict
from cnnjax.data.builders import BUILDERS, SHAPE_NAMES, Digits, Mnist1d, RotatedDigits, Shapes, draw_shapes, rotated_digit_images
from cnnjax.data.stream import STREAM_THRESHOLD_BYTES, GrainBatches, InMemoryBatches, dataset_bytes
from cnnjax.data.load import ArrayDataset, DatasetNotFoundError, builder, default_data_dir, load_arrays

__all__ = [
    "AUGMENTATIONS", "augment", "tta_predict", "GrainBatches", "InMemoryBatches", "STREAM_THRESHOLD_BYTES",
    "dataset_bytes",
    "ArrayDataset", "BUILDERS", "DatasetNotFoundError", "Digits", "Mnist1d", "RotatedDigits", "Shapes", "builder",
    "default_data_dir", "draw_shapes", "load_arrays", "rotated_digit_images", "SHAPE_NAMES",
]
