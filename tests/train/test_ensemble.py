"""Ensembles by vmap: members equal single runs, per-member state and failures, the CSV and the CLI."""

import csv
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from cnnjax.train import TrainConfig, TrainingError, fit, fit_ensemble
from tests.devices import run_on_cpu_devices

pytestmark = pytest.mark.integration  # subprocesses and end-to-end runs: pytest -m integration


def test_members_equal_the_single_runs_and_each_other_differs(tmp_path):
    cfg = TrainConfig(model="mnist1d_cnn", steps=60, run_dir=str(tmp_path / "ens"))
    r = fit_ensemble(cfg, seeds=[0, 1], lr=[0.01, 0.05], progress=False)
    assert [(m["seed"], m["lr"]) for m in r.members] == [(0, 0.01), (0, 0.05), (1, 0.01), (1, 0.05)]
    single = fit(TrainConfig(model="mnist1d_cnn", steps=60, seed=1, lr=0.05, run_dir=str(tmp_path / "one")), progress=False)
    for stacked, alone in zip(jax.tree.leaves(r.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(stacked)[3], alone, rtol=1e-4, atol=1e-5)
    assert r.members[3]["test_acc"] == single.final["test_acc"]
    first = [np.asarray(leaf) for leaf in jax.tree.leaves(r.params)]
    assert all(not np.allclose(f[0], f[2]) for f in first if f[0].size > 1)  # seeds differ
    rows = list(csv.DictReader((r.run_dir / "members.csv").open()))
    assert len(rows) == 4 and rows[2]["seed"] == "1" and rows[2]["status"] == "ok"
    accs = [m["test_acc"] for m in r.members]
    assert abs(r.summary["test_acc"]["mean"] - np.mean(accs)) < 1e-12
    assert abs(r.summary["test_acc"]["std"] - np.std(accs, ddof=1)) < 1e-12


def test_batchnorm_statistics_stay_per_member(tmp_path):
    cfg = TrainConfig(model="resnet20", dataset="digits", batch_size=64, steps=6, optimizer="momentum", lr=0.05,
                      run_dir=str(tmp_path / "bn"))
    r = fit_ensemble(cfg, seeds=[0, 1, 2], progress=False)
    assert [m["status"] for m in r.members] == ["ok"] * 3
    # every parameter leaf has a member axis of 3, and members are different networks
    leaves = [np.asarray(x) for x in jax.tree.leaves(r.params)]
    assert all(x.shape[0] == 3 for x in leaves)
    assert not np.allclose(leaves[0][0], leaves[0][1])


def test_one_diverging_member_is_reported_and_the_rest_finish(tmp_path):
    cfg = TrainConfig(model="mnist1d_cnn", steps=80, optimizer="sgd", run_dir=str(tmp_path / "nan"))
    r = fit_ensemble(cfg, seeds=[0], lr=[0.05, 1e9], progress=False)
    assert r.members[0]["status"] == "ok"
    assert r.members[1]["status"].startswith("diverged at step ")
    assert int(r.members[1]["status"].rsplit(" ", 1)[1]) <= 5
    assert r.summary["finished"] == 1


def test_cli_seeds_and_sweep(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cnnjax", "train", "--model", "logistic", "--steps", "40", "--seeds", "2", "--sweep",
         "lr=0.01,0.1", "--quiet", "--run-dir", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "training 4 members of logistic" in out.stdout and "+-" in out.stdout
    assert len(list(csv.DictReader((tmp_path / "cli" / "members.csv").open()))) == 4
    bad = subprocess.run([sys.executable, "-m", "cnnjax", "train", "--sweep", "momentum=0.9", "--quiet"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert bad.returncode == 2 and "expected KEY=v1,v2,... with KEY one of: lr, weight_decay" in bad.stderr


def test_ensemble_resumes_from_its_checkpoint_exactly(tmp_path):
    run = tmp_path / "ens"
    cfg = TrainConfig(model="logistic", steps=80, checkpoint_every=40, run_dir=str(run))  # 40 steps an epoch
    full = fit_ensemble(cfg, seeds=[0, 1], lr=[0.01, 0.1], progress=False)
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [40, 80]
    shutil.rmtree(run / "checkpoints" / "80")  # as if killed during the second epoch
    (run / "members.csv").unlink()
    out = subprocess.run([sys.executable, "-m", "cnnjax", "train", "--resume", str(run), "--quiet"],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "training 4 members of logistic" in out.stdout
    again = fit_ensemble(cfg, seeds=[0, 1], lr=[0.01, 0.1], progress=False, resume=True)  # already finished: reads back
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    untimed = lambda history: [{k: v for k, v in h.items() if k not in ("wall_s", "examples_per_s")} for h in history]  # noqa: E731
    assert [h["step"] for h in again.history] == [40, 80] and untimed(again.history) == untimed(full.history)
    assert [m["test_acc"] for m in again.members] == [m["test_acc"] for m in full.members]
    with pytest.raises(TrainingError, match="cannot resume"):
        fit_ensemble(cfg, seeds=[0, 1, 2], progress=False, resume=True)


def test_every_fit_option_works_for_ensembles_and_members_match_single_runs(tmp_path):
    """One loop: num_devices, stream and eval_every give each member the run fit gives its (seed, lr)."""
    code = textwrap.dedent(
        """
        import jax, numpy as np
        from cnnjax.train import TrainConfig, fit, fit_ensemble
        assert jax.local_device_count() == 2, jax.devices()
        for stream in (True, False):
            common = dict(model="mnist1d_cnn", batch_size=200, steps=50, eval_every=2, num_devices=2, stream=stream,
                          checkpoint_every=30)
            ens = fit_ensemble(TrainConfig(**common, run_dir=f"TMP/ens{stream}"), seeds=[0, 1], lr=[0.01, 0.03],
                               progress=False)
            assert [h["step"] for h in ens.history] == [40, 50], ens.history  # 20 steps an epoch, every 2nd evaluated
            assert len(jax.tree.leaves(ens.params)[0].sharding.device_set) == 2
            for m, (seed, lr) in enumerate([(0, 0.01), (0, 0.03), (1, 0.01), (1, 0.03)]):
                one = fit(TrainConfig(**common, seed=seed, lr=lr, run_dir=f"TMP/one{stream}{m}"), progress=False)
                assert [h["step"] for h in one.history] == [40, 50]
                for a, b in zip(jax.tree.leaves(ens.params), jax.tree.leaves(one.params)):
                    np.testing.assert_allclose(np.asarray(a)[m], b, rtol=1e-4, atol=1e-5)
                assert ens.members[m]["test_acc"] == one.final["test_acc"]
        print("OK")
        """
    ).replace("TMP", str(tmp_path))
    out = run_on_cpu_devices(code, 2, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "OK" in out.stdout


def test_an_ensemble_stops_once_every_member_diverged(tmp_path):
    cfg = TrainConfig(model="mnist1d_cnn", steps=400, optimizer="sgd", checkpoint_every=20, run_dir=str(tmp_path / "nan"))
    r = fit_ensemble(cfg, seeds=[0, 1], lr=[1e9], progress=False)
    assert all(m["status"].startswith("diverged at step ") for m in r.members)
    assert r.summary["finished"] == 0 and r.summary["steps"] < 400  # stopped early
    saved = sorted(int(p.name) for p in (tmp_path / "nan" / "checkpoints").iterdir())
    assert saved == [] or max(saved) < r.summary["steps"]  # the diverged state is not saved over a good one
