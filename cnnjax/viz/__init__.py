"""Seeing inside CNNs: filters, feature maps, saliency, feature visualisation, and drawing boxes and masks. Matplotlib, headless.

Plot functions return a matplotlib ``Figure`` (shown inline in notebooks) and write a PNG when
given ``path``; nothing goes through pyplot, so no display is needed.
"""

from cnnjax.viz.annotated import plot_detections, plot_segmentation
from cnnjax.viz.features import feature_maps, plot_feature_maps
from cnnjax.viz.filters import apply_filter_bank, conv_kernels, filter_bank, plot_filter_bank, plot_filters, sample_image
from cnnjax.viz.grid import PALETTE, draw_boxes, make_grid, overlay_masks
from cnnjax.viz.maximize import PARAMETRIZATIONS, feature_visualization, plot_feature_visualization
from cnnjax.viz.saliency import (
    METHODS,
    grad_cam,
    integrated_gradients,
    plot_saliency,
    saliency,
    smoothgrad,
    vanilla_gradient,
)

__all__ = [
    "METHODS", "PALETTE", "PARAMETRIZATIONS", "apply_filter_bank", "conv_kernels", "draw_boxes", "feature_maps",
    "feature_visualization", "filter_bank", "grad_cam", "integrated_gradients", "make_grid", "overlay_masks",
    "plot_detections", "plot_feature_maps", "plot_feature_visualization", "plot_filter_bank",
    "plot_filters", "plot_saliency", "plot_segmentation", "saliency", "sample_image", "smoothgrad", "vanilla_gradient",
]
