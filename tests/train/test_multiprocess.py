"""Multi-process training (jax.distributed) on CPU: two `cnnjax train` processes of two forced devices each
end with the parameters of one process on four devices, both with the data in memory and streamed through
Grain (where each process reads only its half of every batch); only process 0 writes the run's files, and a
two-process run resumes exactly."""

import json
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.devices import forced_cpu_env

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration

TRAIN = ["--batch-size", "64", "--steps", "2", "--optimizer", "momentum", "--lr", "0.05", "--checkpoint-every", "1",
         "--quiet"]
IN_MEMORY = ["--model", "resnet20", "--dataset", "digits"]  # batch norm: its statistics are all-reduced across processes
STREAMED = ["--model", "mnist1d_convbase", "--dataset", "mnist1d", "--stream"]  # a smaller model: compiling dominates


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _params(run_dir) -> dict:
    step = max(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    path, ckptr = (run_dir / "checkpoints" / str(step) / "state").absolute(), ocp.StandardCheckpointer()
    meta = ckptr.metadata(path).item_metadata  # saved on 4 devices: restore into host arrays of the same shapes
    state = ckptr.restore(path, jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), meta))
    return {"step": int(state["step"]), "params": state["params"], "rest": state["rest"]}


def _two_processes(run_dir, extra, resume=False):
    port = _free_port()
    args = ["--resume", str(run_dir), "--quiet"] if resume else [*TRAIN, *extra, "--run-dir", str(run_dir)]
    cmd = [sys.executable, "-m", "cnnjax.cli", "train", *args, "--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [subprocess.Popen([*cmd, "--process-id", str(i)], env=forced_cpu_env(2), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


@pytest.mark.parametrize("extra", [IN_MEMORY, STREAMED], ids=["in_memory", "streamed"])
def test_two_processes_match_one_process_on_as_many_devices(tmp_path, extra):
    one = tmp_path / "one"
    out = subprocess.run([sys.executable, "-m", "cnnjax.cli", "train", *TRAIN, *extra, "--run-dir", str(one)],
                         env=forced_cpu_env(4), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    two = tmp_path / "two"
    stdout = _two_processes(two, extra)
    assert "process 0 of 2: 4 devices in all, 2 here" in stdout[0]
    assert "test accuracy" in stdout[0] and "test accuracy" not in stdout[1]  # one final table, from process 0

    a, b = _params(one), _params(two)
    assert a["step"] == b["step"] == 2
    leaves_a = [np.asarray(v) for v in jax.tree.leaves((a["params"], a["rest"]))]
    leaves_b = [np.asarray(v) for v in jax.tree.leaves((b["params"], b["rest"]))]
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        if np.issubdtype(x.dtype, np.floating):  # all-reduces across processes reorder float sums (~1e-6 a step)
            assert np.abs(x - y).max() <= 1e-4 * np.abs(x).max(), (np.abs(x - y).max(), np.abs(x).max())
        else:
            np.testing.assert_array_equal(y, x)
    # process 0 alone wrote the metrics: one row per evaluation, not two
    rows = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [r["step"] for r in map(json.loads, (one / "metrics.jsonl").read_text().splitlines())]
    assert json.loads((two / "config.json").read_text())["model"] == extra[1]
    if "--stream" in extra:  # a two-process resume from step 1 ends where the uninterrupted run did, bit for bit
        shutil.rmtree(two / "checkpoints" / "2")
        _two_processes(two, extra, resume=True)
        c = _params(two)
        assert c["step"] == 2
        for x, y in zip(jax.tree.leaves(b["params"]), jax.tree.leaves(c["params"])):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bad_multiprocess_flags_are_one_line_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cnnjax.cli", "train", "--coordinator", "localhost:1", "--quiet"],
                         env=forced_cpu_env(1), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "needs all of" in out.stderr and "--num-processes" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "cnnjax.cli", "train", "--coordinator", "localhost:1", "--num-processes",
                          "2", "--process-id", "2"], env=forced_cpu_env(1), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "process_id must be in [0, 2), got 2" in out.stderr
    out = subprocess.run([sys.executable, "-m", "cnnjax.cli", "train", "--seeds", "2", "--distributed"],
                         env=forced_cpu_env(1), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "multi-process runs train a single model" in out.stderr
