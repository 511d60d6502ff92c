"""The benchmark suite's own checks: twin models match cnnjax's, and a quick run writes its tables."""

import json

import pytest
from flax import nnx

from benchmarks.__main__ import main
from cnnjax import models
from cnnjax.backends.cpu import onednn
from cnnjax.inspect import count_params


@pytest.mark.parametrize("name, in_channels, expected", [("mnist1d_cnn", 1, 2_050), ("simple_cnn", 1, 106_154),
                                                          ("resnet20", 3, 269_722),
                                                          pytest.param("vgg16", 3, 138_357_544, marks=pytest.mark.integration)])
def test_torch_twins_have_the_zoo_models_parameter_counts(torch, name, in_channels, expected):
    from benchmarks import torch_models

    ours = count_params(nnx.eval_shape(lambda: models.create(name, in_channels=in_channels, rngs=nnx.Rngs(0))))
    assert ours == torch_models.param_count(torch_models.BUILDERS[name]()) == expected


@pytest.mark.parametrize("name, in_channels, num_classes", [("mnist1d_cnn", 1, 10), ("simple_cnn", 1, 10),
                                                            ("resnet20", 3, 10), ("resnet18", 3, 10),
                                                            ("resnet50", 3, 1000), ("unet", 1, 2)])
def test_flax_twins_have_the_zoo_models_parameter_counts(name, in_channels, num_classes):
    from benchmarks import flax_models

    ours = count_params(nnx.eval_shape(lambda: models.create(name, num_classes=num_classes, in_channels=in_channels,
                                                             rngs=nnx.Rngs(0))))
    twin = nnx.eval_shape(lambda: flax_models.BUILDERS[name](num_classes, rngs=nnx.Rngs(0)))
    assert count_params(twin) == ours
    source = open(flax_models.__file__).read()
    assert "import cnnjax" not in source and "from cnnjax" not in source  # the peer is Flax alone


@pytest.mark.integration  # times real workloads
def test_quick_ensemble_benchmark_writes_markdown_and_json(tmp_path):
    assert main(["--quick", "--only", "ensemble", "--repeats", "1", "--out", str(tmp_path), "--tag", "t"]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "8 seeds vmapped in one program" in text and "vmapped throughput =" in text
    rows = json.loads((tmp_path / "t.json").read_text())["ensemble"]
    assert len(rows) == 2 and all(r["median_s"] > 0 and r["min_s"] <= r["median_s"] <= r["max_s"] for r in rows)


@pytest.mark.integration  # times real workloads
def test_quick_conv_strategy_benchmark_times_each_dense_strategy(tmp_path):
    assert main(["--quick", "--only", "conv_strategies", "--repeats", "1", "--out", str(tmp_path), "--tag", "t"]) == 0
    rows = json.loads((tmp_path / "t.json").read_text())["conv_strategies"]
    dnnl = onednn.available()
    assert {r["framework"] for r in rows} == {"cnnjax, lax", "cnnjax, xla_cpu", "cnnjax, im2col", "cnnjax, taps", "cnnjax, auto",
                                              *(["cnnjax, onednn"] if dnnl else [])}
    # taps: the first layer's 3 rows, no model; every other strategy a model and the first layer's 3 rows
    assert len(rows) == 19 + 4 * dnnl and all(r["median_s"] > 0 for r in rows)


def test_build_table_has_a_column_per_kind_and_a_dash_where_a_kind_is_missing():
    from benchmarks.build import build_table

    rows = [{"workload": "resnet50", "framework": "models.create", "median_s": 1.5, "min_s": 1.4, "max_s": 1.9},
            {"workload": "resnet50", "framework": "torch constructor", "median_s": 0.3, "min_s": 0.3, "max_s": 0.4},
            {"workload": "densenet201", "framework": "models.create", "median_s": 1.2, "min_s": 1.1, "max_s": 1.3}]
    lines = build_table(rows).splitlines()
    assert lines[0] == "| model | models.create, s median (min-max) | torch constructor, s median (min-max) |"
    assert lines[2] == "| resnet50 | 1.50 (1.40-1.90) | 0.30 (0.30-0.40) |"
    assert lines[3] == "| densenet201 | 1.20 (1.10-1.30) | — |"


@pytest.mark.integration
def test_quick_build_benchmark_times_a_fresh_process(tmp_path):
    assert main(["--quick", "--only", "build", "--out", str(tmp_path), "--tag", "t"]) == 0
    rows = json.loads((tmp_path / "t.json").read_text())["build"]
    assert {r["framework"] for r in rows} >= {"models.create", "nnx.eval_shape(models.create)"}
    assert all(0 < r["median_s"] < 60 for r in rows)
