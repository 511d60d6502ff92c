"""cnnjax._host_memory: XLA:CPU's per-execution temporaries stop costing page faults once cnnjax is imported."""

import os
import platform
import subprocess
import sys

import pytest

# A six-conv training gradient with about 50 MB of temporaries, run three times; the page faults of the third run.
_SCRIPT = """
import resource
import cnnjax, jax, jax.numpy as jnp
from cnnjax import functional as F
def loss(ws, x):
    for w in ws:
        x = jax.nn.relu(F.conv(x, w, padding=1))
    return jnp.sum(x ** 2)
ws, x = [jnp.full((3, 3, 16, 16), 0.01)] * 6, jnp.ones((64, 32, 32, 16))
f = jax.jit(jax.grad(loss))
for _ in range(2):
    jax.block_until_ready(f(ws, x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
jax.block_until_ready(f(ws, x))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: str) -> int:
    env = {**os.environ, "CNNJAX_KEEP_HOST_MEMORY": keep, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_repeated_executions_reuse_host_memory():
    kept, default = _faults("1"), _faults("0")
    # 50 MB of fresh pages are about 12,000 faults of 4 KiB
    assert kept < 1_000, f"{kept} page faults per run with the memory kept (glibc's defaults: {default})"
    assert default > 6_000, f"glibc's defaults faulted only {default} times (kept: {kept})"


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    from cnnjax import _host_memory

    monkeypatch.setenv("CNNJAX_KEEP_HOST_MEMORY", "0")
    assert _host_memory.keep_freed_memory() is False
