"""The `cnnjax` command, run as a user would, in a subprocess."""

import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "cnnjax", *args], capture_output=True, text=True, timeout=120)


def test_cnnjax_lists_what_exists_and_computes_the_edge_demo():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "cnnjax.functional: adaptive_avg_pool" in out.stdout
    assert out.stdout.count("[0, 30, 30, 0]") == 4


def test_pending_commands_say_so_plainly():
    out = _run("train")
    assert out.returncode == 0, out.stderr
    assert "`cnnjax train` is not available yet" in out.stdout


def test_unknown_command_is_a_one_line_usage_error():
    out = _run("fly")
    assert out.returncode == 2
    assert "invalid choice: 'fly'" in out.stderr
