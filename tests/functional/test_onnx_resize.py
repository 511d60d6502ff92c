"""ONNX's own Resize node tests (onnx.backend.test.case.node.resize) run through functional.resize.

Each case maps to the resize call PyTorch would make. Where ONNX's reference and PyTorch
disagree on the same mode (``FOLLOWS_TORCH``), resize is compared with PyTorch instead. Cases
outside PyTorch's interpolate are skipped with the reason: crop-and-resize (``tf_crop_and_resize``), ONNX's nearest rounding
modes and coordinate maps that PyTorch has no mode for, and ``keep_aspect_ratio_policy``
(ONNX rounds the size instead of flooring it).
"""

import numpy as np
import pytest

from cnnjax.functional import resize
from tests.functional import reference as ref

pytestmark = pytest.mark.integration  # importing ONNX's case generators takes seconds
onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402
from onnx.backend.test.case.node import collect_testcases  # noqa: E402

CASES = {case.name: case for case in collect_testcases("Resize")}


def _attrs(case):
    node = case.model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return node, {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def _unsupported(attrs):
    coord = attrs.get("coordinate_transformation_mode", "half_pixel")
    mode = attrs.get("mode", "nearest")
    if coord == "tf_crop_and_resize":
        return "crop-and-resize"
    if "keep_aspect_ratio_policy" in attrs:
        return "keep_aspect_ratio_policy rounds sizes; PyTorch has no such policy"
    if coord == "half_pixel_symmetric":
        return "half_pixel_symmetric: PyTorch has no such coordinate map"
    if mode == "nearest" and (coord, attrs.get("nearest_mode", "round_prefer_floor")) not in {
        ("half_pixel", "round_prefer_floor"), ("asymmetric", "floor")}:
        return f"nearest with {coord}/{attrs.get('nearest_mode')}: PyTorch has no such mode"
    if mode != "nearest" and coord == "asymmetric":
        return f"{mode} with asymmetric coordinates: PyTorch has no such mode"
    return None


# Cases where ONNX's reference and PyTorch's interpolate disagree for the same mode: resize follows
# PyTorch, so these are compared with torch (where installed) instead of ONNX's expected output.
FOLLOWS_TORCH = {
    "test_resize_downsample_scales_linear_antialias": "ONNX's antialias filter is cut differently at the borders",
    "test_resize_downsample_sizes_linear_antialias": "ONNX's antialias filter is cut differently at the borders",
    "test_resize_downsample_scales_cubic_antialias": "ONNX's antialias filter is cut differently at the borders",
    "test_resize_downsample_sizes_cubic_antialias": "ONNX's antialias filter is cut differently at the borders",
    "test_resize_downsample_sizes_linear_pytorch_half_pixel": "ONNX maps a 1-pixel output to coordinate 0, PyTorch to the centre",
    "test_resize_downsample_scales_linear_align_corners": "ONNX's align_corners divides by the unrounded in * scale",
    "test_resize_downsample_scales_cubic_align_corners": "ONNX's align_corners divides by the unrounded in * scale",
    "test_resize_upsample_sizes_nearest": "a source coordinate falls on .5: ONNX rounds down, nearest-exact up",
    "test_resize_downsample_sizes_nearest": "a source coordinate falls on .5: ONNX rounds down, nearest-exact up",
    "test_resize_upsample_sizes_nearest_axes_2_3": "a source coordinate falls on .5: ONNX rounds down, nearest-exact up",
    "test_resize_upsample_sizes_nearest_axes_3_2": "a source coordinate falls on .5: ONNX rounds down, nearest-exact up",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_resize_node_case(name):
    case = CASES[name]
    node, attrs = _attrs(case)
    reason = _unsupported(attrs)
    if reason:
        pytest.skip(reason)
    inputs, outputs = case.data_sets[0]
    named = dict(zip([n for n in node.input if n], inputs))
    x = ref.channels_last(np.asarray(named["X"], np.float32))
    mode = attrs.get("mode", "nearest")
    method = {"nearest": "nearest-exact", "linear": "bilinear", "cubic": "bicubic"}[mode]
    if mode == "nearest" and attrs.get("coordinate_transformation_mode") == "asymmetric":
        method = "nearest"
    kw = dict(method=method, align_corners=attrs.get("coordinate_transformation_mode") == "align_corners",
              antialias=bool(attrs.get("antialias", 0)))
    if "scales" in named:
        full = [1.0] * x.ndim
        for a, s in zip(attrs.get("axes", range(x.ndim)), named["scales"]):
            full[a] = float(s)
        assert full[:2] == [1.0, 1.0]
        kw["scale_factor"] = tuple(full[2:])
    else:
        size = list(named["X"].shape[2:])
        for a, s in zip(attrs.get("axes", range(x.ndim)), named["sizes"]):
            if a >= 2:
                size[a - 2] = int(s)
        kw["size"] = tuple(size)
    if name in FOLLOWS_TORCH:
        torch = pytest.importorskip("torch")
        mode = {"nearest-exact": "nearest-exact", "nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic"}[method]
        expected = torch.nn.functional.interpolate(
            torch.tensor(named["X"]), size=kw.get("size"), scale_factor=kw.get("scale_factor"), mode=mode,
            align_corners=kw["align_corners"] if method in ("bilinear", "bicubic") else None,
            antialias=kw["antialias"]).numpy()
    else:
        expected = outputs[0]
        if mode == "cubic":
            kw.update(cubic_coeff=attrs.get("cubic_coeff_a", -0.75), exclude_outside=bool(attrs.get("exclude_outside", 0)))
    size = kw.pop("size", None)
    np.testing.assert_allclose(resize(x, size, **kw), ref.channels_last(expected), rtol=1e-5, atol=1e-5)
