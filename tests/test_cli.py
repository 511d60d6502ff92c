"""The `cnnjax` command's overview and its not-yet-available commands, run as a user would."""

import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "cnnjax", *args], capture_output=True, text=True, timeout=120)


def test_cnnjax_lists_what_exists():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "cnnjax.functional: adaptive_avg_pool" in out.stdout
    assert "cnnjax.models (34): alexnet" in out.stdout
    assert "cnnjax train" in out.stdout


def test_pending_commands_say_so_plainly():
    out = _run("bench")
    assert out.returncode == 0, out.stderr
    assert "`cnnjax bench` is not available yet" in out.stdout


def test_unknown_command_is_a_one_line_usage_error():
    out = _run("fly")
    assert out.returncode == 2
    assert "invalid choice: 'fly'" in out.stderr
