"""TFDS builders for the datasets cnnjax makes offline: ``mnist1d`` (and ``mnist1d_shuffled``), ``digits``
(and ``rotated_digits``), ``shapes`` (and ``shape_windows``, its crops for a sliding-window classifier).

They are prepared as ``array_record`` files (no TensorFlow needed) and read back with
``tfds.data_source``, exactly like any TFDS catalog dataset that was prepared that way.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from cnnjax import functional as F


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


def rotated_digit_images(images: np.ndarray, angles: np.ndarray, size: int = 12, pad: int = 3) -> np.ndarray:
    """Digits ``(N, 8, 8)`` in 0..16 upsampled to ``size`` (bicubic), padded by ``pad`` and rotated: ``(N, S, S, 1)``.

    ``S = size + 2 pad``; the defaults give 18x18, whose inscribed disc holds the 12x12 digit's
    diagonal (17 pixels), so no rotation clips it. Rotation: counter-clockwise by ``angles``
    (degrees, one per image), bicubic, zeros outside; values clipped to ``[0, 1]``.
    """
    x = F.resize(jnp.asarray(images, jnp.float32)[..., None] / 16, (size, size), "bicubic")
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return np.clip(np.asarray(F.rotate(x, jnp.asarray(angles, jnp.float32), "bicubic")), 0.0, 1.0)


class RotatedDigits(Digits):
    """Rotated digits, the rotated-MNIST protocol (Larochelle et al. 2007) on scikit-learn's digits.

    :class:`Digits`' fixed split; every image upsampled to 12x12, padded to 18x18 and turned
    by its own uniform random angle in [0, 360) (train seed 0, test seed 1), training and
    test images alike: see :func:`rotated_digit_images`. 1,437 train / 360 test.
    """

    SIZE = 18

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="sklearn digits upsampled to 12x12, padded to 18x18, each rotated by a uniform random angle.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(self.SIZE, self.SIZE, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=10),
                "angle": tfds.features.Scalar(dtype=np.float32),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        xtr, xte, ytr, yte = train_test_split(d.images, d.target, test_size=0.2, random_state=0, stratify=d.target)
        return {"train": self._rotated(xtr, ytr, 0), "test": self._rotated(xte, yte, 1)}

    def _rotated(self, x, y, seed):
        angles = np.random.default_rng(seed).uniform(0, 360, len(x)).astype(np.float32)
        images = rotated_digit_images(x, angles)
        for i, (image, label, angle) in enumerate(zip(images, y, angles)):
            yield i, {"image": image, "label": int(label), "angle": angle}


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


def shape_windows(images: np.ndarray, boxes: np.ndarray, classes: np.ndarray, masks: np.ndarray,
                  rng: np.random.Generator, window: int = 12, negatives: int = 3,
                  min_visible: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Square crops of :class:`Shapes` images resampled to ``window x window``: a sliding-window classifier's data.

    Each shape whose visible part (its class's pixels of ``masks`` inside its box) covers at least
    ``min_visible`` of the shape's own area gives a positive: the square of side ``max(w, h)`` centred on its box, labelled
    with its class. Each image also gives ``negatives`` background crops (label 3): squares of
    side 6 to 16 pixels placed at random where they overlap every box by IoU < 0.3. The crops
    are read bilinearly (``F.affine_grid`` + ``F.grid_sample``, zeros outside the image).

    Returns:
      ``(crops (N, window, window, 1) float32, labels (N,) int64)``.
    """
    size = images.shape[1]
    owner, squares, labels = [], [], []
    for i, (image_boxes, image_classes, mask) in enumerate(zip(boxes, classes, masks)):
        real = image_boxes[image_classes >= 0]
        for box, cls in zip(real, image_classes[image_classes >= 0]):
            w, h = box[2] - box[0], box[3] - box[1]
            area = (1.0, np.pi / 4, 0.5)[cls] * w * h  # a rectangle, ellipse or triangle in its box
            x0, y0, x1, y1 = np.clip(np.round(box).astype(int), 0, size)
            if (mask[y0:y1, x0:x1] == cls + 1).sum() >= min_visible * area:  # its class's pixels inside its box
                squares.append(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(w, h)))
                owner.append(i)
                labels.append(int(cls))
        found = 0
        while found < negatives:
            side = rng.uniform(6, 16)
            cx, cy = rng.uniform(side / 2, size - side / 2, 2)
            x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
            inter = (np.clip(np.minimum(x1, real[:, 2]) - np.maximum(x0, real[:, 0]), 0, None)
                     * np.clip(np.minimum(y1, real[:, 3]) - np.maximum(y0, real[:, 1]), 0, None))
            union = side * side + (real[:, 2] - real[:, 0]) * (real[:, 3] - real[:, 1]) - inter
            if not len(real) or np.max(inter / union) < 0.3:
                squares.append((cx, cy, side))
                owner.append(i)
                labels.append(3)
                found += 1
    cx, cy, side = (np.asarray(v, np.float32) for v in zip(*squares))
    zero = np.zeros_like(side)
    theta = np.stack([np.stack([side / size, zero, 2 * cx / size - 1], -1),
                      np.stack([zero, side / size, 2 * cy / size - 1], -1)], -2)  # output square -> image coordinates
    grid = F.affine_grid(jnp.asarray(theta), (len(side), window, window, 1))
    crops = F.grid_sample(jnp.asarray(images)[np.asarray(owner)], grid)
    return np.asarray(crops, np.float32), np.asarray(labels, np.int64)


class ShapeWindows(tfds.core.GeneratorBasedBuilder):
    """12x12 windows of the :class:`Shapes` images for a sliding-window detector's classifier (4 classes).

    Classes: rectangle, ellipse, triangle (a square crop around a visible shape) and background
    (a crop overlapping no shape by IoU 0.3 or more); see :func:`shape_windows`. Made from the
    same 4,000 training and 1,000 test images as ``shapes`` (seeds 0 and 1).
    """

    VERSION = tfds.core.Version("1.0.0")
    WINDOW = 12

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Square crops of the shapes images around each visible shape, and background crops.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(self.WINDOW, self.WINDOW, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=(*SHAPE_NAMES, "background")),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(4000, 0), "test": self._generate_examples(1000, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        drawn = [draw_shapes(rng, Shapes.SIZE, Shapes.MAX_OBJECTS) for _ in range(n)]
        images, boxes, classes, masks = (np.stack(v) for v in zip(*drawn))
        crops, labels = shape_windows(images, boxes, classes, masks, np.random.default_rng(seed + 100), self.WINDOW)
        for i, (crop, label) in enumerate(zip(crops, labels)):
            yield i, {"image": crop, "label": int(label)}


BUILDERS = {"mnist1d": Mnist1d, "mnist1d_shuffled": Mnist1dShuffled, "digits": Digits, "rotated_digits": RotatedDigits,
            "shapes": Shapes, "shape_windows": ShapeWindows}
