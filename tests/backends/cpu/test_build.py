"""The oneDNN bridge's build is visible, remembered on failure, and never runs on import."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration

_CONV = """
import warnings, numpy as np, jax, jax.numpy as jnp
from cnnjax import functional as F

x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 9, 9, 16)), jnp.float32)
w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 16, 8)), jnp.float32)
y = F.conv(x, w, padding=1)
with F.conv_strategy("lax"):
    ref = F.conv(x, w, padding=1)
np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
print("correct")
"""


def _run(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(tmp_path):
    return {k: v for k, v in os.environ.items() if k != "CXX"} | {"CNNJAX_CACHE": str(tmp_path), "JAX_PLATFORMS": "cpu"}


def test_importing_cnnjax_builds_nothing(env, tmp_path):
    out = _run("import cnnjax, cnnjax.functional, cnnjax.nn, cnnjax.models", env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [] and "compiling" not in out.stderr


def test_without_a_compiler_one_warning_remembered_across_processes_and_correct_results(env, tmp_path):
    env = env | {"PATH": str(tmp_path / "empty")}  # no c++ anywhere
    first, second = _run(_CONV, env), _run(_CONV, env)
    for out in (first, second):
        assert out.returncode == 0 and "correct" in out.stdout, out.stderr[-2000:]
    lines = [line for line in first.stderr.splitlines() if "oneDNN CPU kernels are unavailable" in line]
    if not lines and "package is not installed" not in first.stderr:
        pytest.skip("no oneDNN wheels on this platform: nothing is built")
    assert len(lines) == 1 and "could not run the C++ compiler 'c++'" in lines[0] and "cnnjax info --build" in lines[0]
    assert "compiling the oneDNN CPU kernels" in first.stderr  # the one line saying what is built, once
    again = [line for line in second.stderr.splitlines() if "oneDNN CPU kernels are unavailable" in line]
    assert len(again) == 1 and "could not run the C++ compiler 'c++'" in again[0]
    assert "compiling the oneDNN CPU kernels" not in second.stderr  # remembered: no second attempt
    assert list(tmp_path.glob("onednn-*/build-failed.txt"))
