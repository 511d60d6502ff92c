"""The `cnnjax` command's overview and its not-yet-available commands, run as a user would."""

import subprocess
import sys
from pathlib import Path


def _run(*args):
    return subprocess.run([sys.executable, "-m", "cnnjax", *args], capture_output=True, text=True, timeout=120)


def test_cnnjax_lists_what_exists():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "cnnjax.functional: act_regular, adaptive_avg_pool" in out.stdout
    assert "cnnjax.models (35): alexnet" in out.stdout
    assert "cnnjax.equivariance: assert_equivariant" in out.stdout
    assert "cnnjax train" in out.stdout


def test_pending_commands_say_so_plainly():
    out = _run("sweep")
    assert out.returncode == 0, out.stderr
    assert "`cnnjax sweep` is not available yet" in out.stdout


def test_bench_runs_the_checkouts_benchmarks_and_says_where_they_are_missing(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "cnnjax", "bench", "--help"], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    assert "usage: python -m benchmarks" in out.stdout and "--frameworks" in out.stdout
    out = subprocess.run([sys.executable, "-m", "cnnjax", "bench"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2
    assert "no benchmarks/ folder here" in out.stderr


def test_unknown_command_is_a_one_line_usage_error():
    out = _run("fly")
    assert out.returncode == 2
    assert "invalid choice: 'fly'" in out.stderr
