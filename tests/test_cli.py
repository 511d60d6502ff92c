"""The `cnnjax` command's overview, sweep, experiment and bench dispatch, run as a user would."""

import subprocess
import sys
from pathlib import Path

import pytest

from cnnjax import cli, models

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration


def _run(*args):
    return subprocess.run([sys.executable, "-m", "cnnjax", *args], capture_output=True, text=True, timeout=120)


def test_cnnjax_lists_what_exists():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "cnnjax.functional: act_regular, adaptive_avg_pool" in out.stdout
    assert f"cnnjax.models ({len(models.list_models())}): alexnet" in out.stdout
    assert "cnnjax.equivariance: affine, assert_equivariant" in out.stdout
    assert "cnnjax.detection: average_precision, batched_nms" in out.stdout and "cnnjax.viz: apply_filter_bank" in out.stdout
    assert "cnnjax train" in out.stdout


def test_sweep_trains_a_grid_then_resumes_without_training(tmp_path):
    args = ("sweep", "--grid", "model=logistic,mlp", "seed=0,1", "steps=20", "--out", str(tmp_path / "s"), "--quiet")
    out = _run(*args)
    assert out.returncode == 0, out.stderr
    assert "2 cell(s), 4 run(s)" in out.stdout and (tmp_path / "s" / "sweep.png").stat().st_size > 0
    lines = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("model,steps,member,seed,lr") and len(lines) == 5
    members = tmp_path / "s" / "model=mlp,steps=20" / "members.csv"
    stamp = members.stat().st_mtime_ns
    again = _run(*args)
    assert again.returncode == 0 and members.stat().st_mtime_ns == stamp  # read back, not retrained
    assert again.stdout.splitlines()[-2:] == out.stdout.splitlines()[-2:]


def test_sweep_errors_name_the_bad_key():
    out = _run("sweep", "--grid", "depth=1,2")
    assert out.returncode == 2 and "grid key 'depth' is not a TrainConfig field" in out.stderr
    out = _run("sweep")
    assert out.returncode == 2 and "give at least one --grid" in out.stderr


def test_experiment_lists_studies_and_rejects_unknown_ones_from_any_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cnnjax", "experiment", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "mnist1d_table" in out.stdout and "rotation_gcnn" in out.stdout
    out = subprocess.run([sys.executable, "-m", "cnnjax", "experiment", "nope"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "unknown study 'nope'" in out.stderr


def test_bench_runs_the_checkouts_benchmarks_from_any_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cnnjax", "bench", "--help"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m benchmarks" in out.stdout and "--frameworks" in out.stdout


@pytest.mark.parametrize("command, package", [("bench", "benchmarks"), ("experiment", "experiments")])
def test_without_a_source_checkout_the_commands_say_what_they_need(tmp_path, monkeypatch, capsys, command, package):
    monkeypatch.setattr(cli, "source_checkout", lambda: tmp_path)  # an installed cnnjax with nothing beside it
    monkeypatch.delitem(sys.modules, package, raising=False)
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert f"cnnjax {command}: error: needs a source checkout of cnnjax (a {package}/ folder" in err
    assert package not in sys.modules and str(tmp_path) not in sys.path


def test_unknown_command_is_a_one_line_usage_error():
    out = _run("fly")
    assert out.returncode == 2
    assert "invalid choice: 'fly'" in out.stderr
