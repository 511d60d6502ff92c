"""Every study's --quick run writes its CSV, plots and report; the checks each study makes hold even in quick mode.

The slow-marked tests run the full studies and check the published orderings.
"""

import csv
import importlib
import re
from pathlib import Path

import pytest

from experiments import STUDIES


def _run(name: str, out: Path, quick: bool = True) -> tuple[list[dict], str]:
    module = importlib.import_module(f"experiments.{name}")
    assert module.main([*(["--quick"] if quick else []), "--out", str(out), "--quiet"]) == 0
    with (out / f"{name}.csv").open() as f:
        rows = list(csv.DictReader(f))
    return rows, (out / "REPORT.md").read_text()


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Each quick study runs once per module: ``name -> (rows, report, out folder)``."""
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (*_run(name, out), out)
        return cache[name]
    return get


@pytest.fixture(scope="module")
def quick(quick_runs):
    return lambda name: quick_runs(name)[:2]


def test_every_study_module_is_listed():
    here = Path(__file__).resolve().parents[2] / "experiments"
    assert sorted(STUDIES) == sorted(p.stem for p in here.glob("*.py") if p.stem not in ("__init__", "common"))


@pytest.mark.integration
@pytest.mark.parametrize("name", STUDIES)
def test_quick_study_writes_csv_plots_config_and_a_report_that_links_them(name, quick_runs):
    rows, report, out = quick_runs(name)
    assert rows, f"{name}: the CSV has no rows"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert links, f"{name}: the report shows no plot"
    for link in links:
        assert (out / link).stat().st_size > 5_000, f"{name}: {link} is missing or empty"
    assert (out / "config.json").exists()
    assert report.startswith("# ") and "|---|" in report  # a title and at least one table
    assert "--quick" in report  # it says how it was made


def _floats(rows, key):
    return [float(r[key]) for r in rows]


@pytest.mark.integration
def test_receptive_field_traced_equals_the_closed_form_and_bounds_the_empirical(quick):
    rows, _ = quick("receptive_field_growth")
    assert len(rows) == 4 * 3
    assert all(r["closed_form"] == r["analytic"] for r in rows)
    assert all(int(r["empirical"]) <= int(r["analytic"]) for r in rows)
    plain = [int(r["analytic"]) for r in rows if r["stack"] == "3x3 convs"]
    assert plain == [3, 5, 7]


@pytest.mark.integration
def test_padding_study_circular_is_exact_and_errors_stay_in_the_predicted_band(quick):
    rows, _ = quick("padding_equivariance")
    assert max(_floats([r for r in rows if r["padding"] == "circular"], "error")) < 1e-6
    assert min(_floats([r for r in rows if r["padding"] == "zeros"], "error")) > 1e-3
    assert all(r["outside_mask"] == "0" for r in rows)
    assert max(_floats(rows, "error_masked")) < 1e-6


@pytest.mark.integration
def test_conv_as_matrix_in_the_study_reproduces_the_convolutions(quick):
    _, report = quick("conv_vs_mlp")
    diffs = [float(d) for d in re.findall(r"\| (\d\.\de[+-]\d\d) \|", report)]
    assert len(diffs) == 3 and max(diffs) < 1e-5


@pytest.mark.integration
def test_rotation_study_p4cnn_is_invariant_to_quarter_turns_and_z2_is_not(quick):
    rows, report = quick("rotation_gcnn")
    assert {r["panel"] for r in rows} == {"A: rotated train and test", "B: upright train"}
    assert "## A. Cohen & Welling's protocol" in report and "| 2.28 |" in report
    p4 = [r for r in rows if r["model"] == "p4cnn"]
    z2 = [r for r in rows if r["model"] == "z2cnn"]
    assert max(_floats(p4, "rot90_invariance_error")) < 1e-5 < min(_floats(z2, "rot90_invariance_error"))
    for r in p4:
        if r["panel"].startswith("B"):
            assert r["acc_upright"] == r["acc_rot90"] == r["acc_rot180"] == r["acc_rot270"]


@pytest.mark.integration
def test_rotated_digits_group_models_are_exact_at_quarter_turns_and_closer_off_the_grid(quick):
    rows, report = quick("rotated_digits")
    assert {r["model"] for r in rows} == {"Z2", "C4", "D4", "C8", "D8", "C16"}
    groups = [r for r in rows if r["model"] != "Z2"]
    assert max(_floats(groups, "inv_trained_90")) < 1e-5 < min(_floats([r for r in rows if r["model"] == "Z2"], "inv_trained_90"))
    c8, z2 = (_means(rows, ["model"], "inv_init_45")[m] for m in ("C8", "Z2"))
    assert c8 < z2 / 2
    assert "**Published direction.**" in report and "**Measured here.**" in report


@pytest.mark.integration
def test_shift_study_aps_with_circular_padding_and_global_pool_is_fully_consistent(quick):
    rows, _ = quick("shift_consistency")
    aps = [r for r in rows if r["downsample"] == "APS" and r["setting"] == "circular + global"]
    assert aps and all(float(r["consistency"]) == 1.0 for r in aps)
    assert all(r["acc_shift0"] == r["acc_shift3"] for r in aps)


@pytest.mark.integration
def test_normalization_study_reports_steps_and_divergence(quick):
    rows, report = quick("normalization_ablation")
    assert {r["norm"] for r in rows} == {"none", "batch"}
    assert all(r["status"] == "ok" or r["status"].startswith("diverged") for r in rows)
    assert "steps to loss <" in report


@pytest.mark.integration
def test_detection_study_scores_every_class_and_draws_boxes(quick):
    rows, report = quick("detect_shapes")
    assert sorted({r["detector"] for r in rows}) == ["sliding window", "yolo_v1"]
    for detector, min_boxes in (("yolo_v1", 1000), ("sliding window", 40)):  # quick: the window scans 40 images
        sub = [r for r in rows if r["detector"] == detector]
        assert [r["class"] for r in sub] == ["rectangle", "ellipse", "triangle", "mean"]
        aps = [float(r["ap50"]) for r in sub]
        assert all(0.0 <= a <= 1.0 for a in aps) and aps[-1] == pytest.approx(sum(aps[:3]) / 3)
        assert sum(int(r["ground_truth_boxes"]) for r in sub[:3]) == int(sub[-1]["ground_truth_boxes"]) > min_boxes
    assert "mAP@0.5 = " in report and "Sliding-window baseline" in report


@pytest.mark.integration
def test_segmentation_study_reports_iou_per_class(quick):
    rows, report = quick("segment_shapes")
    r = rows[0]
    ious = [float(r[f"iou_{c}"]) for c in ("background", "rectangle", "ellipse", "triangle")]
    assert float(r["miou"]) == pytest.approx(sum(ious) / 4, abs=1e-6)
    assert 0.5 < float(r["pixel_acc"]) <= 1.0 and "mIoU" in report


@pytest.mark.integration
def test_saliency_study_salient_pixels_matter_more_than_random_ones(quick):
    rows, report = quick("saliency_digits")
    acc = {(r["pixels"], int(r["deleted"])): float(r["accuracy"]) for r in rows}
    for method in ("vanilla", "integrated_gradients"):  # even after 50 steps the maps beat chance
        assert acc[(method, 16)] < acc[("random", 16)] - 0.1
    assert "Grace Hopper" in report


# ---- full runs: the published orderings (minutes each; `pytest -m slow`) ----


def _means(rows, by, key="test_acc"):
    out = {}
    for r in rows:
        out.setdefault(tuple(r[b] for b in by), []).append(float(r[key]))
    return {k if len(k) > 1 else k[0]: sum(v) / len(v) for k, v in out.items()}


@pytest.mark.slow
def test_full_mnist1d_table_orders_cnn_over_mlp_over_logistic(tmp_path):
    acc = _means(_run("mnist1d_table", tmp_path, quick=False)[0], ["model"])
    assert acc["mnist1d_convbase"] > acc["mlp"] > acc["logistic"]
    assert acc["mnist1d_convbase"] > 0.88 and 0.6 < acc["mlp"] < 0.75 and 0.25 < acc["logistic"] < 0.4


@pytest.mark.slow
def test_full_shuffled_study_hurts_the_cnn_and_not_the_mlp(tmp_path):
    acc = _means(_run("mnist1d_shuffled", tmp_path, quick=False)[0], ["model", "dataset"])
    assert acc[("mnist1d_convbase", "mnist1d")] - acc[("mnist1d_convbase", "mnist1d_shuffled")] > 0.2
    assert abs(acc[("mlp", "mnist1d")] - acc[("mlp", "mnist1d_shuffled")]) < 0.05
    assert abs(acc[("logistic", "mnist1d")] - acc[("logistic", "mnist1d_shuffled")]) < 0.03


@pytest.mark.slow
def test_full_shift_study_aps_is_fully_consistent_and_blur_helps(tmp_path):
    rows = _run("shift_consistency", tmp_path, quick=False)[0]
    cons = _means(rows, ["dataset", "setting", "downsample"], "consistency")
    for dataset in ("mnist1d", "digits"):
        assert cons[(dataset, "circular + global", "APS")] == 1.0
        assert cons[(dataset, "circular + global", "blur 5")] > cons[(dataset, "circular + global", "strided conv")]


@pytest.mark.slow
def test_full_rotation_study_p4cnn_beats_z2_on_rotated_digits(tmp_path):
    rows = _run("rotation_gcnn", tmp_path, quick=False)[0]
    upright = _means([r for r in rows if r["panel"].startswith("B")], ["model"], "acc_random 90k")
    assert upright["p4cnn"] > upright["z2cnn"] + 0.1
    rotated = _means([r for r in rows if r["panel"].startswith("A")], ["model"], "test_error")
    assert rotated["p4cnn"] < rotated["z2cnn"]


@pytest.mark.slow
def test_full_detection_study_reaches_map_08(tmp_path):
    rows = _run("detect_shapes", tmp_path, quick=False)[0]
    yolo_mean = next(r for r in rows if r["detector"] == "yolo_v1" and r["class"] == "mean")
    assert float(yolo_mean["ap50"]) >= 0.8


@pytest.mark.slow
def test_full_mnist1d_lecture_cnn_beats_the_fully_connected_network(tmp_path):
    rows = _run("mnist1d_lecture", tmp_path, quick=False)[0]
    error = _means(rows, ["network"], "test_error")
    assert error["CNN (2,050 params)"] < error["FC (150,185 params)"] - 0.1


@pytest.mark.slow
def test_full_segmentation_study_reaches_miou_085(tmp_path):
    rows = _run("segment_shapes", tmp_path, quick=False)[0]
    assert max(float(r["miou"]) for r in rows) >= 0.85
