"""Beyond functional and nn: the public functions of detection, segmentation, equivariance, inspect and viz refuse
non-array inputs with a TypeError naming the function and the argument (functional and nn have their own batteries)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnnjax.detection as det
import cnnjax.equivariance as eq
import cnnjax.inspect as ins
import cnnjax.segmentation as seg
import cnnjax.viz as viz
from cnnjax import models

B = np.array([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]], np.float32)
S = np.array([0.9, 0.8], np.float32)
C = np.array([0, 1], np.int32)
IMG = np.zeros((16, 16, 1), np.float32)
PRED = np.zeros((7, 7, 12), np.float32)
LOGITS = np.zeros((1, 4, 4, 3), np.float32)
LABELS = np.zeros((1, 4, 4), np.int32)
X = np.ones((2, 8, 1), np.float32)
T = eq.shift([1], spatial_dims=1)
IDENT = lambda a: a  # noqa: E731
CLASSIFY = lambda w: jnp.ones((w.shape[0], 2))  # noqa: E731
NET = models.create("digits_cnn", num_classes=10, in_channels=1, seed=0)
DIGITS = np.zeros((2, 8, 8, 1), np.float32)
PHOTO = np.zeros((16, 16, 3), np.float32)
MASK = np.zeros((16, 16), np.int32)

# name -> (function, valid keyword arguments, the array arguments to spoil)
CALLS = {
    "box_convert": (det.box_convert, dict(boxes=B, in_fmt="xyxy", out_fmt="xywh"), ["boxes"]),
    "box_area": (det.box_area, dict(boxes=B), ["boxes"]),
    "box_iou": (det.box_iou, dict(boxes1=B, boxes2=B), ["boxes1", "boxes2"]),
    "nms": (det.nms, dict(boxes=B, scores=S), ["boxes", "scores"]),
    "batched_nms": (det.batched_nms, dict(boxes=B, scores=S, classes=C), ["boxes", "scores", "classes"]),
    "select_detections": (det.select_detections, dict(boxes=B, scores=S, classes=C), ["boxes", "scores", "classes"]),
    "sliding_windows": (det.sliding_windows, dict(image=IMG, window=4), ["image"]),
    "sliding_window_scores": (det.sliding_window_scores, dict(classify=CLASSIFY, image=IMG, window=4), ["image"]),
    "image_pyramid": (det.image_pyramid, dict(image=IMG, scales=[1.0]), ["image"]),
    "multiscale_detect": (det.multiscale_detect, dict(classify=CLASSIFY, image=IMG, window=8, stride=4, scales=[1.0]),
                          ["image"]),
    "yolo_targets": (det.yolo_targets, dict(boxes=B, classes=C, grid=7, image_size=16), ["boxes", "classes"]),
    "yolo_loss": (det.yolo_loss, dict(pred=PRED, target=np.zeros((7, 7, 6), np.float32)), ["pred", "target"]),
    "decode_yolo": (det.decode_yolo, dict(pred=PRED, image_size=16), ["pred"]),
    "detect": (det.detect, dict(pred=PRED, image_size=16), ["pred"]),
    "average_precision": (det.average_precision, dict(recall=np.array([0.5, 1.0]), precision=np.array([1.0, 0.5])),
                          ["recall", "precision"]),
    "mean_average_precision": (det.mean_average_precision, dict(pred_boxes=B[None], pred_scores=S[None], pred_classes=C[None],
                                                                gt_boxes=B[None], gt_classes=C[None]),
                               ["pred_boxes", "pred_scores", "pred_classes", "gt_boxes", "gt_classes"]),
    "pixel_cross_entropy": (seg.pixel_cross_entropy, dict(logits=LOGITS, labels=LABELS), ["logits", "labels"]),
    "dice_loss": (seg.dice_loss, dict(logits=LOGITS, labels=LABELS), ["logits", "labels"]),
    "confusion_matrix": (seg.confusion_matrix, dict(pred=LABELS, labels=LABELS, num_classes=3), ["pred", "labels"]),
    "pixel_accuracy": (seg.pixel_accuracy, dict(confusion=np.eye(3)), ["confusion"]),
    "iou_per_class": (seg.iou_per_class, dict(confusion=np.eye(3)), ["confusion"]),
    "mean_iou": (seg.mean_iou, dict(confusion=np.eye(3)), ["confusion"]),
    "equivariance_error": (eq.equivariance_error, dict(f=IDENT, x=X, transform=T), ["x"]),
    "invariance_error": (eq.invariance_error, dict(f=IDENT, x=X, transform=T), ["x"]),
    "compare": (eq.compare, dict(f=IDENT, x=X, transform=T), ["x"]),
    "error_curve": (eq.error_curve, dict(f=IDENT, x=X, transform=T), ["x"]),
    "assert_equivariant": (eq.assert_equivariant, dict(f=IDENT, x=X, transform=T), ["x"]),
    "assert_invariant": (eq.assert_invariant, dict(f=lambda a: a.sum((1, 2)), x=X, transform=T), ["x"]),
    "lie_derivative": (eq.lie_derivative, dict(f=IDENT, x=X, spatial_dims=1), ["x"]),
    "relative_error": (eq.relative_error, dict(actual=X, expected=X), ["actual", "expected"]),
    "conv_as_matrix": (ins.conv_as_matrix, dict(w=np.ones((3, 1, 1), np.float32), input_shape=(8, 1)), ["w"]),
    "singular_values": (ins.singular_values, dict(w=np.ones((3, 1, 1), np.float32), input_size=(8,)), ["w"]),
    "vanilla_gradient": (viz.vanilla_gradient, dict(model=NET, x=DIGITS), ["x"]),
    "smoothgrad": (viz.smoothgrad, dict(model=NET, x=DIGITS, samples=2), ["x"]),
    "integrated_gradients": (viz.integrated_gradients, dict(model=NET, x=DIGITS, baseline=DIGITS, steps=2),
                             ["x", "baseline"]),
    "grad_cam": (viz.grad_cam, dict(model=NET, x=DIGITS, layer="conv2"), ["x"]),
    "saliency": (viz.saliency, dict(model=NET, x=DIGITS), ["x"]),
    "plot_saliency": (viz.plot_saliency, dict(images=DIGITS, maps={"zero": DIGITS[..., 0]}), ["images"]),
    "feature_maps": (viz.feature_maps, dict(model=NET, x=DIGITS, layer="conv1"), ["x"]),
    "plot_feature_maps": (viz.plot_feature_maps, dict(model=NET, x=DIGITS, layer="conv1", max_maps=2), ["x"]),
    "apply_filter_bank": (viz.apply_filter_bank, dict(image=PHOTO), ["image"]),
    "plot_filter_bank": (viz.plot_filter_bank, dict(image=PHOTO), ["image"]),
    "make_grid": (viz.make_grid, dict(images=DIGITS), ["images"]),
    "overlay_masks": (viz.overlay_masks, dict(image=PHOTO, mask=MASK), ["image", "mask"]),
    "draw_boxes": (viz.draw_boxes, dict(image=PHOTO, boxes=B, classes=C), ["image", "boxes", "classes"]),
    "plot_detections": (viz.plot_detections, dict(images=PHOTO[None], boxes=B[None], classes=C[None], scores=S[None]),
                        ["images", "boxes", "classes", "scores"]),
    "plot_segmentation": (viz.plot_segmentation, dict(images=PHOTO[None], masks=[MASK[None]]), ["images"]),
    "plot_feature_visualization": (viz.plot_feature_visualization, dict(images=DIGITS), ["images"]),
}
BAD = {"None": None, "str": "image", "mixed list": [[1.0, "a"], [2.0, 3.0]], "ragged list": [[1.0], [2.0, 3.0]],
       "dict": {"x": 1}, "object": object()}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_non_array_inputs_get_a_type_error_naming_the_function_and_argument(name):
    fn, kwargs, arrays = CALLS[name]
    fn(**kwargs)  # the valid call runs
    params = inspect.signature(fn).parameters
    for arg in arrays:
        for bad in BAD.values():
            if bad is None and params[arg].default is None:
                continue  # an optional array: None means "not given"
            with pytest.raises(TypeError, match=rf"^{name}: {arg} must be"):
                fn(**dict(kwargs, **{arg: bad}))


def test_every_detection_segmentation_and_viz_function_is_in_the_battery():
    no_arrays = {"BOX_FORMATS", "window_boxes",  # a constant; sizes only
                 "METHODS", "PALETTE", "PARAMETRIZATIONS", "conv_kernels", "filter_bank", "sample_image",
                 "feature_visualization",  # a model and names: its input is what it makes
                 "plot_filters"}  # a model or a kernel: a bad kernel is refused by its own check
    assert (set(det.__all__) | set(seg.__all__) | set(viz.__all__)) - no_arrays <= set(CALLS)


def test_models_data_and_inspect_refuse_non_arrays_and_non_shapes_by_name():
    from cnnjax import data

    for bad in BAD.values():
        with pytest.raises(TypeError, match="^PlainConvNet: x must be"):
            NET(bad)
        with pytest.raises(TypeError, match="^tta_predict: x must be"):
            data.tta_predict(NET, bad)
        with pytest.raises(TypeError, match="^augment: x must be"):
            data.augment("flip")(jax.random.key(0), bad)
    with pytest.raises(TypeError, match="^augment: key must be a jax.random key, got NoneType"):
        data.augment("flip")(None, DIGITS)
    for bad in (None, "8x8", [1, "a"], 3):
        with pytest.raises(TypeError, match="^summary: input_shape must be a shape"):
            ins.summary(NET, bad)
        with pytest.raises(TypeError, match="^receptive_field: input_shape must be a shape"):
            ins.receptive_field(NET, bad)
    with pytest.raises(ValueError, match="^summary: input_shape must have at least 2 entries, each >= 1, got \\(0, 8, 8, 1\\)"):
        ins.summary(NET, (0, 8, 8, 1))
    with pytest.raises(TypeError, match="^load_torch_state_dict: state_dict must be a mapping"):
        models.load_torch_state_dict(NET, None)
