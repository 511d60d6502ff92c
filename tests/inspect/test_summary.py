"""summary and count_params: rows, totals, and nothing computed."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from cnnjax import models
from cnnjax.inspect import count_params, summary


def test_simple_cnn_rows_and_totals(capsys):
    s = summary(models.create("simple_cnn"), (2, 28, 28, 1), print_table=True)
    printed = capsys.readouterr().out
    assert [(r.name, r.type, r.output_shape, r.params) for r in s.rows] == [
        ("conv1.0", "Conv", (2, 28, 28, 6), 60), ("conv1.2", "MaxPool", (2, 14, 14, 6), 0),
        ("conv2.0", "Conv", (2, 14, 14, 16), 880), ("conv2.2", "MaxPool", (2, 7, 7, 16), 0),
        ("flatten", "Flatten", (2, 784), 0), ("hidden.0", "Linear", (2, 120), 94_200),
        ("hidden.1", "Linear", (2, 84), 10_164), ("head", "Linear", (2, 10), 850),
    ]
    # mult-adds by hand: conv = outputs x kernel volume, linear = outputs x fan-in (batch of 2)
    assert s.mult_adds == 2 * (28 * 28 * 6 * 9 + 14 * 14 * 16 * 54 + 120 * 784 + 84 * 120 + 10 * 84)
    assert s.trainable_params == 106_154 and s.non_trainable == 0
    assert s.params_mb == 106_154 * 4 / 1e6
    assert "Trainable params: 106,154" in printed and "conv2.0" in printed and str(s) in printed


def test_resnet50_summary_without_allocating_the_weights():
    model = nnx.eval_shape(lambda: models.create("resnet50"))
    s = summary(model, (1, 224, 224, 3), print_table=False)
    assert s.trainable_params == 25_557_032
    assert s.non_trainable == 2 * sum(r.output_shape[-1] for r in s.rows if r.type == "BatchNorm")
    assert round(s.mult_adds / 1e9, 2) == 4.09  # torchinfo's figure for torchvision's resnet50
    assert s.rows[0].name == "conv1" and s.rows[-1].name == "fc"


def test_count_params_by_kind():
    model = models.create("resnet20")
    assert count_params(model) == 269_722
    assert count_params(model, nnx.BatchStat) == 2 * (16 + 2 * 3 * (16 + 32 + 64))  # mean + var per BN channel
    assert count_params(model) == sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_summary_leaves_the_model_untouched():
    model = models.create("resnet20")
    before = jax.tree.map(jnp.copy, nnx.state(model))
    summary(model, (4, 32, 32, 3), print_table=False)
    after = nnx.state(model)
    assert all(bool((a == b).all()) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_printing_the_summary_shows_the_table_once(capsys):
    s = summary(models.create("mnist1d_cnn"), (1, 40, 1))
    assert capsys.readouterr().out == ""  # building it prints nothing
    print(s)
    out = capsys.readouterr().out
    assert out.count("Trainable params: 2,050") == 1
    assert repr(s) == str(s)


def test_torchinfo_mult_adds_count_the_bias_additions():
    # the lecture's torchinfo table for its MNIST-1D CNN at batch 100: 1.07 M; products alone: 1,023,000
    model = models.create("mnist1d_cnn")
    assert summary(model, (100, 40, 1)).mult_adds == 1_023_000
    s = summary(model, (100, 40, 1), mult_adds="torchinfo")
    assert s.mult_adds == 1_072_000  # + one per bias per output: (19*15 + 9*15 + 4*15 + 10) * 100
    with pytest.raises(ValueError, match="summary: mult_adds must be one of"):
        summary(model, (1, 40, 1), mult_adds="flops")
