"""Segmentation and detection through the same fit / fit_ensemble as classification."""

import numpy as np
import pytest

from cnnjax.data import load_arrays
from cnnjax.train import TrainConfig, TrainingError, fit, fit_ensemble
from cnnjax.train.tasks import Objective, check_task, targets

SEG = dict(model="unet", dataset="shapes", task="segment", model_options={"depth": 1, "width": 4}, batch_size=50)
DET = dict(model="yolo_v1", dataset="shapes", task="detect", model_options={"grid": 4, "stages": 3, "width": 4},
           batch_size=50)


@pytest.mark.integration
@pytest.mark.parametrize("loss", ["cross_entropy", "dice"])
def test_segmentation_fit_scores_pixels(tmp_path, loss):
    r = fit(TrainConfig(**SEG, loss=loss, steps=30, lr=1e-2, run_dir=str(tmp_path)), progress=False)
    final = r.final
    ds = load_arrays("shapes").normalized()
    pred = np.concatenate([np.argmax(r.model(ds.x_test[i : i + 250]), -1) for i in range(0, 1000, 250)])
    assert pred.shape == (1000, 32, 32)
    assert final["test_acc"] == pytest.approx((pred == ds.extras["test"]["mask"]).mean(), abs=1e-6)  # per pixel
    assert np.isfinite(final["train_loss"]) and (tmp_path / "curves.png").exists()


@pytest.mark.integration
def test_detection_targets_and_fit(tmp_path):
    ds = load_arrays("shapes")
    r = fit(TrainConfig(**DET, steps=20, lr=1e-3, run_dir=str(tmp_path)), progress=False)
    t = targets("detect", ds, "test", r.model)
    assert t.shape == (1000, 4, 4, 6)
    kept = int(t[..., 4].sum())  # one object per cell: at most the number of objects
    assert kept <= int((ds.extras["test"]["classes"] >= 0).sum()) and kept > 1000
    assert 0.0 <= r.final["test_acc"] <= 1.0 and np.isfinite(r.final["test_loss"])


@pytest.mark.integration
def test_segmentation_ensemble_keeps_members_apart(tmp_path):
    r = fit_ensemble(TrainConfig(**SEG, steps=10, lr=1e-2, run_dir=str(tmp_path)), seeds=[0, 1], progress=False)
    assert [m["status"] for m in r.members] == ["ok", "ok"]
    assert r.members[0]["test_acc"] != r.members[1]["test_acc"]
    assert r.predict(np.zeros((2, 32, 32, 1), np.float32)).shape == (2, 2, 32, 32, 4)


def test_objective_metrics_count_the_scored_units():
    y = np.zeros((2, 3, 3), np.int32)
    logits = np.zeros((2, 3, 3, 4), np.float32)
    logits[..., 0] = 1.0
    correct, _, count = Objective("segment").metrics(logits, y)
    assert (int(correct), int(count)) == (18, 18)
    t = np.zeros((1, 2, 2, 6), np.float32)
    t[0, 0, 1, 4:] = [1, 2]  # one object of class 2
    pred = np.zeros((1, 2, 2, 2 * 5 + 3), np.float32)
    pred[..., 10 + 2] = 5.0
    assert [int(v) for v in Objective("detect").metrics(pred, t)] == [1, 1, 1]


@pytest.mark.integration  # builds the datasets and starts fit
def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="task must be one of classify, segment, detect, got 'detection'"):
        check_task("detection", "")
    with pytest.raises(ValueError, match="loss 'dice' does not fit task 'classify'"):
        check_task("classify", "dice")
    with pytest.raises(TrainingError, match="task 'segment' needs the dataset's mask features; 'mnist1d' has none"):
        fit(TrainConfig(model="unet", dataset="mnist1d", task="segment", model_options={"depth": 1, "width": 4,
            "spatial_dims": 1}, steps=1, run_dir=str(tmp_path)), progress=False)
    with pytest.raises(TrainingError, match=r"outputs \(2, 4, 4, 4\) instead of \(2, 32, 32, 4\) for task 'segment'"):
        fit(TrainConfig(**{**SEG, "model": "yolo_v1", "model_options": {"grid": 4, "stages": 3, "width": 4, "boxes": 0}},
                        steps=1, run_dir=str(tmp_path)), progress=False)
    with pytest.raises(TrainingError, match="task 'detect' needs a YOLO-style model"):
        fit(TrainConfig(**{**DET, "model": "unet", "model_options": {"depth": 1, "width": 4}}, steps=1,
                        run_dir=str(tmp_path)), progress=False)
