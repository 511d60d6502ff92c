"""Grids of runs: parsing, cells, configs, resume, parallel processes, summaries."""

import dataclasses

import numpy as np
import pytest

from cnnjax.train import TrainConfig, fit_ensemble, group_stats, parse_grid, run_sweep
from cnnjax.train import sweep as sweep_mod
from cnnjax.train.sweep import cell_config, cell_name, cells, scalar


def test_parse_grid_types_values_and_names_bad_keys():
    grid = parse_grid(["lr=0.1,1e-3", "model-options.padding_mode=zeros,circular", "stream=true", "grad_clip=None"])
    assert grid == {"lr": [0.1, 0.001], "model_options.padding_mode": ["zeros", "circular"], "stream": [True],
                    "grad_clip": [None]}
    with pytest.raises(ValueError, match="grid key 'width' is not a TrainConfig field"):
        parse_grid(["width=1,2"])
    with pytest.raises(ValueError, match=r"--grid 'lr': expected KEY=v1,v2"):
        parse_grid(["lr"])
    with pytest.raises(ValueError, match="grid key 'model_options' is not a TrainConfig field"):
        parse_grid(["model_options=1"])


def test_scalar_reads_what_csv_and_the_cli_write():
    for value in (3, 0.25, 1e-05, True, False, None, "circular", "diverged at step 4"):
        assert scalar(str(value)) == value


def test_cells_leave_vmapped_keys_to_the_ensemble_and_configs_merge_model_options():
    grid = {"seed": [0, 1], "model": ["a", "b"], "lr": [0.1], "model_options.head": ["flatten", "global"]}
    assert cells(grid) == [{"model": m, "model_options.head": h} for m in "ab" for h in ("flatten", "global")]
    base = TrainConfig(model_options={"padding": "same"})
    cfg = cell_config(base, {"model": "mnist1d_cnn", "model_options.head": "global"})
    assert cfg.model == "mnist1d_cnn" and cfg.model_options == {"padding": "same", "head": "global"}
    assert base.model_options == {"padding": "same"}  # the base is not modified
    assert cell_name({"model": "mlp", "model_options.head": "global"}) == "model=mlp,head=global"
    assert cell_name({}) == "base"


def test_group_stats_match_numpy():
    rows = [{"m": m, "acc": a, "status": "ok"} for m, a in [("x", 0.1), ("x", 0.4), ("x", 0.7), ("y", 0.5)]]
    rows.append({"m": "y", "acc": float("nan"), "status": "diverged at step 3"})
    stats = {s["m"]: s for s in group_stats(rows, ["m"], "acc")}
    assert stats["x"]["mean"] == pytest.approx(0.4) and stats["x"]["std"] == pytest.approx(np.std([0.1, 0.4, 0.7], ddof=1))
    assert stats["x"]["ci95"] == pytest.approx(1.96 * stats["x"]["std"] / np.sqrt(3))
    assert stats["y"] == {"m": "y", "mean": 0.5, "std": 0.0, "ci95": 0.0, "n": 1}


@pytest.mark.integration
def test_run_sweep_rows_resume_and_parallel_processes_agree(tmp_path, monkeypatch):
    base = TrainConfig(steps=15, eval_every=1)
    grid = {"model": ["logistic", "mlp"], "seed": [0, 1], "lr": [0.01]}
    first = run_sweep(base, grid, tmp_path / "a", progress=False)
    assert [(r["model"], r["seed"]) for r in first.rows] == [("logistic", 0), ("logistic", 1), ("mlp", 0), ("mlp", 1)]
    assert first.csv_path.exists() and first.plot_path.stat().st_size > 0
    monkeypatch.setattr(sweep_mod, "fit_ensemble", lambda *a, **k: pytest.fail("a finished cell was retrained"))
    again = run_sweep(base, grid, tmp_path / "a", progress=False)
    assert again.rows == first.rows
    monkeypatch.undo()
    # A cell cut off mid-training (a checkpoint, no members.csv) resumes instead of starting over.
    (tmp_path / "a" / "model=logistic" / "members.csv").unlink()
    calls = []
    monkeypatch.setattr(sweep_mod, "fit_ensemble", lambda *a, **k: calls.append(k["resume"]) or fit_ensemble(*a, **k))
    assert run_sweep(base, grid, tmp_path / "a", progress=False).rows == first.rows and calls == [True]
    monkeypatch.undo()
    # A changed config or a changed member list is not "finished": those cells train again.
    done = tmp_path / "a" / "model=mlp" / "members.csv"
    stamp = done.stat().st_mtime_ns
    changed = run_sweep(dataclasses.replace(base, steps=16), {**grid, "model": ["mlp"]}, tmp_path / "a", progress=False)
    assert done.stat().st_mtime_ns != stamp and len(changed.rows) == 2
    assert len(run_sweep(base, {**grid, "seed": [0, 1, 2]}, tmp_path / "a", progress=False).rows) == 6
    parallel = run_sweep(base, grid, tmp_path / "b", jobs=2, progress=False)
    for a, b in zip(first.rows, parallel.rows):
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=2e-3) and a["model"] == b["model"]


def test_run_sweep_checks_every_cell_before_training(tmp_path):
    with pytest.raises(Exception, match="optimizer|model_options"):
        run_sweep(TrainConfig(steps=5), {"model": ["mlp"], "optimizer": [3]}, tmp_path, progress=False)
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_sweep(TrainConfig(steps=5), {"model": ["mlp"]}, tmp_path, jobs=0, progress=False)
