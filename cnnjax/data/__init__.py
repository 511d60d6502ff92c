"""Datasets through TFDS without TensorFlow: offline builders (mnist1d, digits, shapes) and catalog names."""

from cnnjax.data.augment import AUGMENTATIONS, augment, tta_predict
from cnnjax.data.builders import BUILDERS, SHAPE_NAMES, Digits, Mnist1d, Shapes, draw_shapes
from cnnjax.data.stream import STREAM_THRESHOLD_BYTES, GrainBatches, InMemoryBatches, dataset_bytes
from cnnjax.data.load import ArrayDataset, DatasetNotFoundError, builder, default_data_dir, load_arrays

__all__ = [
    "AUGMENTATIONS", "augment", "tta_predict", "GrainBatches", "InMemoryBatches", "STREAM_THRESHOLD_BYTES",
    "dataset_bytes",
    "ArrayDataset", "BUILDERS", "DatasetNotFoundError", "Digits", "Mnist1d", "Shapes", "builder",
    "default_data_dir", "draw_shapes", "load_arrays", "SHAPE_NAMES",
]
