"""Weights from files: .pth (torch.save in the test), .safetensors where installed, and the orbax folders that
save_weights / `cnnjax convert-weights` write; nothing downloads, and a missing file says so."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnjax import cli, models
from cnnjax.models.resnet import BasicBlock, ResNet
from tests.models.test_torch_port import _randomise_batchnorm, _torch_resnet

_forward = nnx.jit(lambda m, x: m(x))


def _saved_resnet(torch, path, wrap=None):
    torch.set_default_dtype(torch.float32)
    tnet = _torch_resnet(torch, False, (1, 1, 1, 1), 5)
    with torch.no_grad():
        _randomise_batchnorm(torch, tnet)
    tnet.eval()
    state = tnet.state_dict()
    torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = tnet(torch.tensor(x)).numpy()
    return jnp.asarray(x.transpose(0, 2, 3, 1)), expected


@pytest.mark.parametrize("wrap", [None, "state_dict"])
def test_a_pth_file_loads_into_a_model_and_through_an_orbax_folder(torch, tmp_path, wrap):
    x, expected = _saved_resnet(torch, tmp_path / "w.pth", wrap)
    model = ResNet(BasicBlock, (1, 1, 1, 1), 5, 3, nnx.Rngs(0))
    models.load_weights(model, tmp_path / "w.pth").eval()
    np.testing.assert_allclose(_forward(model, x), expected, rtol=1e-4, atol=1e-4)
    folder = models.save_weights(model, tmp_path / "converted")
    fresh = ResNet(BasicBlock, (1, 1, 1, 1), 5, 3, nnx.Rngs(1))
    models.load_weights(fresh, folder).eval()
    jax.tree.map(np.testing.assert_array_equal, nnx.state(fresh), nnx.state(model))
    with pytest.raises(FileExistsError, match="already exists"):
        models.save_weights(model, folder)


@pytest.mark.integration
def test_create_with_weights_and_the_convert_weights_command(torch, tmp_path, capsys):
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    from tests.models.torchvision_twins import densenet

    tnet = densenet(torch, growth=32, block_config=(6, 12, 24, 16), num_init=64, num_classes=1000)  # densenet121
    torch.save(tnet.state_dict(), tmp_path / "densenet121.pth")
    assert cli.main(["convert-weights", str(tmp_path / "densenet121.pth"), str(tmp_path / "dn"), "--model",
                     "densenet121"]) == 0
    assert "wrote densenet121 (7,978,856 parameters)" in capsys.readouterr().out
    a = models.create("densenet121", weights=tmp_path / "densenet121.pth")
    b = models.create("densenet121", weights=tmp_path / "dn")
    jax.tree.map(np.testing.assert_array_equal, nnx.state(a), nnx.state(b))
    np.testing.assert_array_equal(a.features.conv0.kernel[...], tnet.features.conv0.weight.detach().numpy().transpose(2, 3, 1, 0))


def test_safetensors_files_load(torch, tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    x, expected = _saved_resnet(torch, tmp_path / "w.pth")
    safetensors.save_file({k: np.ascontiguousarray(v) for k, v in models.read_state_dict(tmp_path / "w.pth").items()},
                          str(tmp_path / "w.safetensors"))
    model = ResNet(BasicBlock, (1, 1, 1, 1), 5, 3, nnx.Rngs(0))
    models.load_weights(model, tmp_path / "w.safetensors").eval()
    np.testing.assert_allclose(_forward(model, x), expected, rtol=1e-4, atol=1e-4)


def test_missing_and_unknown_files_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; cnnjax never downloads weights"):
        models.create("resnet18", weights=tmp_path / "resnet18-f37072fd.pth")
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"weights file 'w.h5': unknown format; expected .pth"):
        models.read_state_dict(tmp_path / "w.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"load_weights: .* is not a cnnjax weights folder for ResNet"):
        models.create("resnet18", weights=tmp_path / "empty")
