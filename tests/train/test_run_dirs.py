"""Run folders are self-contained: a copied or moved run resumes where it is and the original is never touched;
damaged checkpoints fall back to the newest intact one; a failing save or resume says so in one line."""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cnnjax.train import CheckpointError, TrainConfig, fit
from cnnjax.train import checkpoint as ckpt

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration

COMMON = ["--model", "logistic", "--steps", "120", "--checkpoint-every", "40", "--keep-checkpoints", "5", "--quiet"]


def cnnjax(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cnnjax", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=dict(os.environ))


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def untimed(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_s", "examples_per_s")} for r in rows]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run made with a relative --run-dir, as a user makes one, checkpoints at 40, 80 and 120."""
    home = tmp_path_factory.mktemp("home")
    out = cnnjax("train", *COMMON, "--run-dir", "runs/a", cwd=home)
    assert out.returncode == 0, out.stderr[-2000:]
    return home / "runs" / "a"


def interrupted_copy(finished: Path, where: Path) -> Path:
    shutil.copytree(finished, where)
    shutil.rmtree(where / "checkpoints" / "120")  # as if killed before the last save
    return where


def test_a_copied_run_resumes_in_the_copy_from_any_directory_and_the_original_is_untouched(finished, tmp_path):
    before = digest(finished)
    copy = interrupted_copy(finished, tmp_path / "copy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = cnnjax("train", "--resume", str(copy), "--quiet", cwd=elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resumed from step 80 ({copy})" in out.stdout
    assert digest(finished) == before  # every byte of the original
    assert untimed(copy) == untimed(finished)  # bit-identical to the uninterrupted run
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["120", "40", "80"]
    assert list(elsewhere.iterdir()) == []  # nothing made in the working directory
    ev = cnnjax("eval", str(copy), cwd=elsewhere)
    assert ev.returncode == 0 and json.loads(ev.stdout.splitlines()[-1])["step"] == 120


def test_a_moved_run_resumes_where_it_now_is(finished, tmp_path):
    before = digest(finished)
    moved = interrupted_copy(finished, tmp_path / "first")
    moved = Path(shutil.move(moved, tmp_path / "renamed"))
    out = cnnjax("train", "--resume", "renamed", "--quiet", cwd=tmp_path)  # relative, from the folder above
    assert out.returncode == 0, out.stderr[-2000:]
    assert untimed(moved) == untimed(finished)
    assert digest(finished) == before


def test_a_failed_resume_creates_nothing(finished, tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(finished, empty)
    shutil.rmtree(empty / "checkpoints")
    before = digest(empty)
    out = cnnjax("train", "--resume", str(empty), "--quiet", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"cnnjax train: error: no checkpoint found in {empty}/checkpoints; "
                                               "start over without --resume"]
    assert digest(empty) == before and not (empty / "checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_checkpoint_falls_back_to_the_newest_intact_one(finished, tmp_path, damage):
    run = interrupted_copy(finished, tmp_path / "run")
    data = sorted((run / "checkpoints" / "80" / "state").rglob("d/*"))
    assert data, "no array files in the checkpoint"
    for f in data:
        if damage == "truncate":
            os.truncate(f, 10)
        else:
            f.unlink()
    out = cnnjax("train", "--resume", str(run), "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cnnjax train: warning: checkpoint step 80 in {run} cannot be restored")
    assert "using step 40 instead" in lines[0]
    assert "resumed from step 40" in out.stdout
    assert untimed(run) == untimed(finished)  # as a run resumed from step 40
    assert (run / "checkpoints-damaged").is_dir()  # set aside, not deleted


def test_no_intact_checkpoint_is_one_line(finished, tmp_path):
    run = interrupted_copy(finished, tmp_path / "run")
    for step in ("40", "80"):
        for f in (run / "checkpoints" / step / "state").rglob("d/*"):
            os.truncate(f, 10)
    before = digest(run)
    for command in (["train", "--resume", str(run), "--quiet"], ["eval", str(run)]):
        out = cnnjax(*command, cwd=tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
        assert lines[0].startswith(f"cnnjax {command[0]}: error: no intact checkpoint in {run}/checkpoints (steps 80, 40")
        assert "without --resume" in lines[0]
    assert digest(run) == before


def test_a_failing_save_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    save = ckpt.ocp.CheckpointManager.save

    def full_disk(self, step, *args, **kwargs):
        if step > 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, step, *args, **kwargs)

    monkeypatch.setattr(ckpt.ocp.CheckpointManager, "save", full_disk)
    cfg = TrainConfig(model="logistic", steps=120, checkpoint_every=40, run_dir=str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match=r"could not save the checkpoint at step 80 .*No space left on device.*"
                                              r"last good checkpoint \(step 40\) is kept"):
        fit(cfg, progress=False)
    monkeypatch.setattr(ckpt.ocp.CheckpointManager, "save", save)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == ["40"]
    resumed = fit(TrainConfig.from_run_dir(tmp_path / "run"), resume=True, progress=False)
    whole = fit(TrainConfig(model="logistic", steps=120, checkpoint_every=40, run_dir=str(tmp_path / "whole")),
                progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(whole.params)))
