"""Layerwise reports: exact where the network is equivariant, and where it is lost."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.equivariance import group_action, layerwise_equivariance, shift
from cnnjax.models import create


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_resnet_aps_is_exact_at_every_layer_and_the_table_and_plot_render(rng, tmp_path):
    model = create("resnet20", padding_mode="circular", downsample="aps")
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 3)), jnp.float32)
    report = layerwise_equivariance(model, x, shift([(4, 4), (1, 3)], spatial_dims=2))
    rows = {r.name: r for r in report.rows}
    assert list(rows) == ["stem", "layer1", "layer2", "layer3", "pre_logits", "logits"]
    assert rows["layer3"].stride == (4, 4) and rows["logits"].kind == "invariance"
    assert max(r.errors.max() for r in report.rows if r.kind == "invariance") < 1e-5
    assert rows["layer1"].errors.max() < 1e-5
    assert "layer3" in str(report) and "invariance" in str(report)
    report.plot(tmp_path / "depth.png")
    assert (tmp_path / "depth.png").stat().st_size > 1000


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_strided_zero_padded_cnn_loses_invariance_with_depth(rng):
    model = create("mnist1d_cnn")
    x = jnp.asarray(rng.normal(size=(8, 40, 1)), jnp.float32)
    rows = layerwise_equivariance(model, x, shift([1, 2], spatial_dims=1, mode="zeros")).rows
    assert rows[-1].kind == "invariance" and rows[-1].mean > 0.05
    assert [r.stride for r in rows[:3]] == [(2,), (4,), (10,)]


@pytest.mark.integration  # expensive: the integration tier runs it (the fast tier stays under 8 minutes)
def test_p4cnn_group_maps_with_per_layer_out_transforms(rng):
    model = create("p4cnn", depth=3, padding=1)
    model.eval()
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 1)), jnp.float32)
    regular = group_action("p4", on="regular")
    report = layerwise_equivariance(model, x, group_action("p4"),
                                    out_transforms={"lift": regular, "gconv2": regular, "gconv3": regular})
    assert np.max([r.errors.max() for r in report.rows]) < 1e-5
