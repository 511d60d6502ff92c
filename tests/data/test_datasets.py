"""The offline TFDS builders and the loader's errors."""

import numpy as np
import pytest

from cnnjax.data import DatasetNotFoundError, draw_shapes, load_arrays, rotated_digit_images, shape_windows


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_mnist1d_is_make_dataset_with_default_args():
    from mnist1d.data import get_dataset_args, make_dataset

    ds = load_arrays("mnist1d")
    ref = make_dataset(get_dataset_args())
    assert ds.x_train.shape == (4000, 40, 1) and ds.x_test.shape == (1000, 40, 1) and ds.num_classes == 10
    # TFDS stores examples in its own (deterministic) order: compare as sorted (label, signal) records.
    def records(x, y):
        return sorted((int(label), row.astype(np.float32).tobytes()) for row, label in zip(x, y))

    assert records(ds.x_train[..., 0], ds.y_train) == records(ref["x"], ref["y"])
    assert records(ds.x_test[..., 0], ds.y_test) == records(ref["x_test"], ref["y_test"])


def test_digits_split_is_fixed_disjoint_and_stratified():
    from sklearn.datasets import load_digits

    ds = load_arrays("digits")
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert np.bincount(ds.y_test).min() >= 34  # stratified: every class present in test
    all_images = load_digits().images.reshape(len(load_digits().images), -1)
    seen = {row.tobytes() for row in all_images.astype(np.float32)}
    assert {x.ravel().tobytes() for x in ds.x_test} <= seen
    np.testing.assert_allclose(ds.mean, ds.x_train.mean(), rtol=1e-5)  # statistics from the training split
    # values as stored (0..16), and printing the dataset says what to do about it
    assert "in [0, 16]" in repr(ds) and "call .normalized()" in repr(ds)
    norm = ds.normalized()
    assert "standardised" in repr(norm) and ".normalized()" not in repr(norm)
    np.testing.assert_allclose(norm.x_train.mean(), 0, atol=1e-5)
    assert norm.normalized() is norm  # idempotent: a second call does not standardise again


def test_rotated_digit_images_turn_without_clipping():
    from sklearn.datasets import load_digits

    d = load_digits().images[:6]
    upright = rotated_digit_images(d, np.zeros(6))
    turned = rotated_digit_images(d, np.array([90.0, 180.0, 270.0, 30.0, 45.0, 200.0]))
    assert upright.shape == turned.shape == (6, 18, 18, 1) and upright.min() >= 0 and upright.max() <= 1
    assert np.abs(upright[:, :3]).max() < 1e-6 and np.abs(upright[:, :, -3:]).max() < 1e-6  # the 3-pixel frame is empty
    for k in (1, 2, 3):  # quarter turns are exact pixel permutations
        np.testing.assert_allclose(turned[k - 1], np.rot90(upright[k - 1], k), atol=1e-6)
    # any angle keeps the digit's ink inside the image (bicubic resampling changes the mass a little)
    np.testing.assert_allclose(turned.sum((1, 2, 3))[3:], upright.sum((1, 2, 3))[3:], rtol=0.03)


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_rotated_digits_dataset_is_the_digits_split_each_turned_by_its_recorded_angle():
    ds, plain = load_arrays("rotated_digits"), load_arrays("digits")
    assert ds.x_train.shape == (1437, 18, 18, 1) and ds.x_test.shape == (360, 18, 18, 1)
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.bincount(plain.y_test))
    angles = ds.extras["train"]["angle"]
    assert angles.min() >= 0 and angles.max() < 360 and np.std(angles) > 90  # uniform over the circle


def test_shapes_labels_boxes_and_masks_agree():
    ds = load_arrays("shapes")
    assert ds.x_train.shape == (4000, 32, 32, 1) and ds.num_classes == 3
    extras = ds.extras["train"]
    for i in range(50):
        mask, classes, boxes = extras["mask"][i], extras["classes"][i], extras["boxes"][i]
        present = set(np.unique(mask)) - {0}
        assert present <= {int(c) + 1 for c in classes if c >= 0}
        assert ds.y_train[i] == int(np.argmax([(mask == c + 1).sum() for c in range(3)]))
        for c, (x0, y0, x1, y1) in zip(classes, boxes):
            if c >= 0:
                assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32


def test_shape_windows_crop_each_visible_shape_and_background_elsewhere():
    # a 12-pixel square box is read at scale 1: its window is the image's pixels, exactly
    image = np.random.default_rng(0).uniform(0, 0.1, (1, 32, 32, 1)).astype(np.float32)
    image[0, 8:20, 10:22] = 0.8
    boxes = np.array([[[10, 8, 22, 20], [0, 0, 0, 0]]], np.float32)
    classes, mask = np.array([[0, -1]]), np.zeros((1, 32, 32), np.int32)
    mask[0, 8:20, 10:22] = 1
    crops, labels = shape_windows(image, boxes, classes, mask, np.random.default_rng(1), window=12, negatives=4)
    assert crops.shape == (5, 12, 12, 1) and list(labels) == [0, 3, 3, 3, 3]
    np.testing.assert_allclose(crops[0], image[0, 8:20, 10:22], atol=1e-6)
    assert (crops[1:] < 0.8).mean() > 0.5  # background crops overlap the square by IoU < 0.3
    mask[0, 8:20, 10:22] = 0  # wholly covered by a later shape: no positive
    _, labels = shape_windows(image, boxes, classes, mask, np.random.default_rng(1), negatives=1)
    assert list(labels) == [3]


def test_draw_shapes_is_deterministic_per_seed():
    a = draw_shapes(np.random.default_rng(5))
    b = draw_shapes(np.random.default_rng(5))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_catalog_dataset_that_is_not_prepared_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)dataset 'mnist' is not prepared in .*cnnjax never downloads at run time.*download_and_prepare"):
        load_arrays("mnist", data_dir=str(tmp_path))


def test_unknown_dataset_lists_what_exists(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'no_such_data': cnnjax makes digits, mnist1d, mnist1d_shuffled, rotated_digits, shape_windows, shapes offline"):
        load_arrays("no_such_data", data_dir=str(tmp_path))


def test_mnist1d_shuffled_is_mnist1d_with_one_fixed_permutation_of_positions():
    from cnnjax.data.builders import MNIST1D_PERMUTATION as perm

    a, b = load_arrays("mnist1d"), load_arrays("mnist1d_shuffled")
    assert sorted(perm) == list(range(40)) and (perm != np.arange(40)).sum() > 30
    np.testing.assert_array_equal(b.x_train, a.x_train[:, perm])
    np.testing.assert_array_equal(b.x_test, a.x_test[:, perm])
    np.testing.assert_array_equal(b.y_train, a.y_train)
