"""Grids, overlays, filter and feature-map plots: exact layouts, files written headless."""

import numpy as np
import pytest
import scipy.ndimage

from cnnjax import models
from cnnjax.functional import filters
from cnnjax.viz import (
    PALETTE,
    apply_filter_bank,
    conv_kernels,
    draw_boxes,
    make_grid,
    overlay_masks,
    plot_feature_maps,
    plot_filter_bank,
    plot_filters,
    plot_saliency,
    sample_image,
)


def test_make_grid_places_each_image(rng):
    imgs = rng.uniform(size=(5, 3, 4, 2)).astype(np.float32)
    g = make_grid(imgs, nrow=2, padding=1, pad_value=-1)
    assert g.shape == (3 * 4 + 1, 2 * 5 + 1, 2)
    for i in range(5):
        r, c = divmod(i, 2)
        np.testing.assert_array_equal(g[1 + 4 * r : 4 + 4 * r, 1 + 5 * c : 5 + 5 * c], imgs[i])
    np.testing.assert_array_equal(g[9:12, 6:10], -1)  # the empty sixth cell is padding
    with pytest.raises(ValueError, match=r"got shape \(4, 4\)"):
        make_grid(np.zeros((4, 4)))


def test_overlay_masks_blends_only_foreground():
    image = np.full((4, 4), 0.5, np.float32)
    mask = np.zeros((4, 4), int)
    mask[1, 2] = 3
    out = overlay_masks(image, mask, alpha=0.5)
    np.testing.assert_allclose(out[1, 2], 0.25 + 0.5 * PALETTE[3])
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"mask must be the image's \(H, W\) = \(4, 4\)"):
        overlay_masks(image, mask[:3])


def test_draw_boxes_outlines_pixels():
    out = draw_boxes(np.zeros((10, 10)), [[2, 3, 6, 8], [0, 0, 9, 9]], classes=[1, -1])
    edge = np.zeros((10, 10), bool)
    edge[3, 2:6] = edge[7, 2:6] = edge[3:8, 2] = edge[3:8, 5] = True
    np.testing.assert_array_equal(np.any(out > 0, -1), edge)  # the padded box (class -1) is not drawn
    np.testing.assert_allclose(out[3, 2], PALETTE[1])


def test_filter_bank_matches_scipy_and_writes_a_grid(tmp_path, rng):
    image = rng.uniform(size=(20, 24, 3)).astype(np.float32)
    r = apply_filter_bank(image)
    grey = image.mean(-1)
    for name, k in [("sobel x", filters.sobel()[..., 0, 0]), ("LoG σ=2", filters.laplacian_of_gaussian(13, 2.0)[..., 0, 0])]:
        want = scipy.ndimage.correlate(grey, np.asarray(k), mode="mirror")  # jnp "reflect" is scipy's "mirror"
        np.testing.assert_allclose(r[name], want, rtol=1e-4, atol=1e-5)
    fig = plot_filter_bank(image, tmp_path / "bank.png")
    assert (tmp_path / "bank.png").stat().st_size > 0 and len([a for a in fig.axes if a.images]) == len(r)


def test_sample_image_is_a_real_photograph():
    im = sample_image()
    assert im.shape == (600, 512, 3) and 0 <= im.min() < 0.1 and im.max() > 0.9 and im.std() > 0.1


def test_plot_filters_rgb_tiles_or_channel_rows(tmp_path, rng):
    fig = plot_filters(rng.normal(size=(3, 3, 3, 8)), path=tmp_path / "rgb.png")
    assert fig.axes[0].images[0].get_array().shape == (3 * 4 + 1, 3 * 4 + 1, 3)  # 8 RGB tiles, 3 per row
    fig = plot_filters(rng.normal(size=(3, 3, 2, 4)))
    assert fig.axes[0].images[0].get_array().shape == (4 * 4 + 1, 2 * 4 + 1)  # a row per filter, a column per channel
    net = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
    assert list(conv_kernels(net)) == ["conv1.0", "conv2.0", "conv3.0"]
    assert "conv1.0" in fig_title(plot_filters(net))
    # one naming scheme: return_features' block names, param_paths' and module_paths' layer names
    _, features = net(np.zeros((1, 8, 8, 1), np.float32), return_features=True)
    assert "conv2" in features and "conv2.0.kernel" in models.param_paths(net)
    assert {"conv2", "conv2.0"} <= set(models.module_paths(net))
    assert "conv2.0" in fig_title(plot_filters(net, "conv2"))
    assert "conv3.0" in fig_title(plot_filters(net, "conv3.0"))
    assert "conv3.0" in fig_title(plot_filters(net, "conv3.layers.0"))  # the explicit container step still works
    with pytest.raises(ValueError, match="no conv layer 'fc'; the model's are conv1.0"):
        plot_filters(net, "fc")
    assert (tmp_path / "rgb.png").exists()


def fig_title(fig):
    return fig.axes[0].get_title()


def test_feature_maps_and_saliency_plots(tmp_path, rng):
    net = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
    x = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    fig = plot_feature_maps(net, x[0], "conv1", tmp_path / "fm.png", max_maps=10)
    assert len([a for a in fig.axes if a.images]) == 11 and (tmp_path / "fm.png").exists()
    assert len([a for a in plot_feature_maps(net, x, "conv2").axes if a.images]) == 33
    with pytest.raises(ValueError, match="no feature 'conv7'; this model's are conv1, conv2, conv3, pre_logits"):
        plot_feature_maps(net, x, "conv7")
    with pytest.raises(ValueError, match="is a vector"):
        plot_feature_maps(net, x, "pre_logits")
    fig = plot_saliency(x, {"a": np.ones((3, 8, 8)), "b": np.zeros((3, 8, 8))}, tmp_path / "s.png", titles=["x", "y", "z"])
    assert len(fig.axes) == 9 and fig.axes[3].get_title() == "y" and (tmp_path / "s.png").exists()
