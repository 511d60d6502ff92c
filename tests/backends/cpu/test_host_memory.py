"""cnnjax.backends.cpu.host_memory: XLA:CPU's per-execution temporaries stop costing page faults once it is turned on
(fit, the CLI and the benchmarks do), and importing cnnjax leaves the allocator alone."""

import os
import platform
import subprocess
import sys

import pytest

# A six-conv training gradient with about 50 MB of temporaries (about 12,300 page faults of 4 KiB when they are
# fresh), run 16 times; the page faults of each of the last 8 runs.
_SCRIPT = """
import resource, sys
import cnnjax
if sys.argv[1] == "keep":
    cnnjax.backends.cpu.keep_freed_memory()
assert cnnjax.backends.cpu.host_memory.is_set() == (sys.argv[1] == "keep")
import jax, jax.numpy as jnp
from cnnjax import functional as F
def loss(ws, x):
    for w in ws:
        x = jax.nn.relu(F.conv(x, w, padding=1))
    return jnp.sum(x ** 2)
ws, x = [jnp.full((3, 3, 16, 16), 0.01)] * 6, jnp.ones((64, 32, 32, 16))
f = jax.jit(jax.grad(loss))
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(f(ws, x))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults[8:])
"""


def _faulting_runs(mode: str) -> list[int]:
    """``mode``: "keep" turns the setting on first; "import" only imports cnnjax."""
    env = {k: v for k, v in os.environ.items() if k != "CNNJAX_KEEP_HOST_MEMORY"} | {"JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [int(f) for f in out.stdout.split()[-8:] if int(f) > 6_000]  # runs that took fresh temporaries


@pytest.mark.integration
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_repeated_executions_reuse_host_memory():
    """glibc's defaults, which importing cnnjax leaves alone, fault the temporaries in on every run. With the memory
    kept, the heap grows for the first few runs (the freed block does not always fit the next request) and then
    serves every run from memory it has."""
    kept, default = _faulting_runs("keep"), _faulting_runs("import")
    assert len(default) == 8, f"after import cnnjax: only {len(default)} of 8 runs faulted their temporaries in"
    assert len(kept) <= 2, f"with the memory kept, {len(kept)} of the last 8 runs faulted in: {kept}"


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    from cnnjax.backends.cpu import host_memory

    monkeypatch.setattr(host_memory, "_done", [])
    monkeypatch.setenv("CNNJAX_KEEP_HOST_MEMORY", "0")
    assert host_memory.keep_freed_memory() is False and not host_memory.is_set()
