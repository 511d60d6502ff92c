"""The benchmark suite's own checks: twin models match cnnjax's, and a quick run writes its tables."""

import json

import pytest
from flax import nnx

from benchmarks.__main__ import main
from cnnjax import models
from cnnjax.backends.cpu import onednn
from cnnjax.inspect import count_params


@pytest.mark.parametrize("name, in_channels, expected", [("mnist1d_cnn", 1, 2_050), ("simple_cnn", 1, 106_154),
                                                          ("resnet20", 3, 269_722)])
def test_torch_twins_have_the_zoo_models_parameter_counts(torch, name, in_channels, expected):
    from benchmarks import torch_models

    ours = count_params(models.create(name, in_channels=in_channels, rngs=nnx.Rngs(0)))
    assert ours == torch_models.param_count(torch_models.BUILDERS[name]()) == expected


def test_quick_ensemble_benchmark_writes_markdown_and_json(tmp_path):
    assert main(["--quick", "--only", "ensemble", "--repeats", "1", "--out", str(tmp_path), "--tag", "t"]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "8 seeds vmapped in one program" in text and "vmapped throughput =" in text
    rows = json.loads((tmp_path / "t.json").read_text())["ensemble"]
    assert len(rows) == 2 and all(r["median_s"] > 0 and r["min_s"] <= r["median_s"] <= r["max_s"] for r in rows)


def test_quick_conv_strategy_benchmark_times_each_dense_strategy(tmp_path):
    assert main(["--quick", "--only", "conv_strategies", "--repeats", "1", "--out", str(tmp_path), "--tag", "t"]) == 0
    rows = json.loads((tmp_path / "t.json").read_text())["conv_strategies"]
    dnnl = onednn.available()
    assert {r["framework"] for r in rows} == {"cnnjax, lax", "cnnjax, xla_cpu", "cnnjax, im2col", "cnnjax, taps", "cnnjax, auto",
                                              *(["cnnjax, onednn"] if dnnl else [])}
    # taps: the first layer's 3 rows, no model; every other strategy a model and the first layer's 3 rows
    assert len(rows) == 19 + 4 * dnnl and all(r["median_s"] > 0 for r in rows)
