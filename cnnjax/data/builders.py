"""TFDS builders for the datasets cnnjax makes offline: ``mnist1d`` (and ``mnist1d_shuffled``), ``digits``, ``shapes``.

They are prepared as ``array_record`` files (no TensorFlow needed) and read back with
``tfds.data_source``, exactly like any TFDS catalog dataset that was prepared that way.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


class Mnist1d(tfds.core.GeneratorBasedBuilder):
    """MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test signals of length 40, 10 classes.

    Generated with the ``mnist1d`` package's ``make_dataset(get_dataset_args())`` (its
    default seed), never its downloader.
    """

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="MNIST-1D, generated offline by mnist1d.make_dataset with its default arguments.",
            features=tfds.features.FeaturesDict(
                {"signal": tfds.features.Tensor(shape=(40, 1), dtype=np.float32), "label": tfds.features.ClassLabel(num_classes=10)}
            ),
            supervised_keys=("signal", "label"),
            homepage="https://github.com/greydanus/mnist1d",
        )

    def _split_generators(self, dl_manager):
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        return {"train": self._generate_examples(data["x"], data["y"]), "test": self._generate_examples(data["x_test"], data["y_test"])}

    def _generate_examples(self, x, y):
        for i, (signal, label) in enumerate(zip(x, y)):
            yield i, {"signal": np.asarray(signal, np.float32)[:, None], "label": int(label)}


class Mnist1dShuffled(Mnist1d):
    """MNIST-1D with one fixed random permutation of the 40 positions, the same for train and test.

    The permutation is ``np.random.default_rng(0).permutation(40)`` (:data:`MNIST1D_PERMUTATION`).
    Greydanus' test of spatial inductive bias: an MLP does not care, a CNN does.
    """

    def _generate_examples(self, x, y):
        yield from super()._generate_examples(np.asarray(x)[:, MNIST1D_PERMUTATION], y)


MNIST1D_PERMUTATION = np.random.default_rng(0).permutation(40)


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, values 0..16), 10 classes.

    Fixed split: a stratified 80/20 shuffle with seed 0 (1,437 train / 360 test).
    """

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="sklearn.datasets.load_digits, split 80/20 (stratified, seed 0).",
            features=tfds.features.FeaturesDict(
                {"image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32), "label": tfds.features.ClassLabel(num_classes=10)}
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        xtr, xte, ytr, yte = train_test_split(d.images, d.target, test_size=0.2, random_state=0, stratify=d.target)
        return {"train": self._generate_examples(xtr, ytr), "test": self._generate_examples(xte, yte)}

    def _generate_examples(self, x, y):
        for i, (image, label) in enumerate(zip(x, y)):
            yield i, {"image": np.asarray(image, np.float32)[..., None], "label": int(label)}


SHAPE_NAMES = ("rectangle", "ellipse", "triangle")


def draw_shapes(rng: np.random.Generator, size: int = 32, max_objects: int = 3):
    """One image of 1..max_objects random shapes on a noisy background.

    Returns ``(image (size, size, 1) float32, boxes (max_objects, 4) xyxy in pixels,
    labels (max_objects,) with -1 padding, mask (size, size) int32 with 0 = background
    and k + 1 = class k)``. Later shapes occlude earlier ones.
    """
    image = rng.uniform(0.0, 0.15, (size, size)).astype(np.float32)
    mask = np.zeros((size, size), np.int32)
    boxes = np.zeros((max_objects, 4), np.float32)
    labels = -np.ones((max_objects,), np.int64)
    yy, xx = np.mgrid[:size, :size] + 0.5
    for i in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(3))
        w, h = rng.uniform(0.2, 0.45, 2) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        if cls == 0:
            inside = (xx >= x0) & (xx <= x0 + w) & (yy >= y0) & (yy <= y0 + h)
        elif cls == 1:
            inside = ((xx - x0 - w / 2) / (w / 2)) ** 2 + ((yy - y0 - h / 2) / (h / 2)) ** 2 <= 1
        else:  # isosceles triangle, apex at the top
            t = (yy - y0) / h
            inside = (t >= 0) & (t <= 1) & (np.abs(xx - x0 - w / 2) <= t * w / 2)
        image[inside] = rng.uniform(0.5, 1.0)
        mask[inside] = cls + 1
        boxes[i] = (x0, y0, x0 + w, y0 + h)
        labels[i] = cls
    return image[..., None], boxes, labels, mask


class Shapes(tfds.core.GeneratorBasedBuilder):
    """Generated 32x32 images of rectangles, ellipses and triangles with labels, boxes and masks.

    ``label`` is the class of the largest shape (for classification); ``boxes``/``classes``
    (up to 3, padded with -1) serve detection; ``mask`` (0 background, k+1 for class k)
    serves segmentation. 4,000 train / 1,000 test, seeds 0 and 1.
    """

    VERSION = tfds.core.Version("1.0.0")
    SIZE, MAX_OBJECTS = 32, 3

    def _info(self):
        s, m = self.SIZE, self.MAX_OBJECTS
        return tfds.core.DatasetInfo(
            builder=self,
            description="Random rectangles, ellipses and triangles with boxes and segmentation masks.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(s, s, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=SHAPE_NAMES),
                "boxes": tfds.features.Tensor(shape=(m, 4), dtype=np.float32),
                "classes": tfds.features.Tensor(shape=(m,), dtype=np.int64),
                "mask": tfds.features.Tensor(shape=(s, s), dtype=np.int32),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(4000, 0), "test": self._generate_examples(1000, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            image, boxes, classes, mask = draw_shapes(rng, self.SIZE, self.MAX_OBJECTS)
            areas = [(mask == c + 1).sum() for c in range(3)]
            yield i, {"image": image, "label": int(np.argmax(areas)), "boxes": boxes, "classes": classes, "mask": mask}


BUILDERS = {"mnist1d": Mnist1d, "mnist1d_shuffled": Mnist1dShuffled, "digits": Digits, "shapes": Shapes}
