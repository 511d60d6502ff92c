"""timm checkpoints load into the zoo's torchvision-named models and give timm's logits (recorded from timm, whose
tensors these are: see ``timm_fixture``)."""

import jax
import numpy as np
import pytest

from cnnjax import models
from cnnjax.models.timm_names import timm_family, timm_to_torchvision
from tests.models.test_zoo import abstract
from tests.models.timm_fixture import LOGITS_SHOWN, example_input, fake_state_dict, recorded

RECORDED = recorded()


@pytest.mark.integration  # builds five ImageNet models
@pytest.mark.parametrize("timm_name", sorted(RECORDED))
def test_timm_state_dicts_give_timms_logits(timm_name):
    entry = RECORDED[timm_name]
    sd = fake_state_dict(entry["keys"])
    shuffled = dict(sorted(sd.items(), key=lambda kv: kv[0][::-1]))  # safetensors files keep no module order
    model = models.create(entry["torchvision"], **entry["options"])
    models.load_torch_state_dict(model, timm_to_torchvision(shuffled, model))
    model.eval()
    logits = np.asarray(jax.jit(lambda x: model(x))(example_input()))
    np.testing.assert_allclose(logits[:, :LOGITS_SHOWN], np.asarray(entry["logits"]), rtol=1e-4, atol=2e-5)


@pytest.mark.integration  # builds an ImageNet model
def test_a_timm_file_loads_through_weights(tmp_path):
    torch = pytest.importorskip("torch")
    entry = RECORDED["regnety_004"]
    sd = fake_state_dict(entry["keys"])
    path = tmp_path / "regnety_004.pth"
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, path)  # as timm's train script saves
    model = models.create("regnet_y_400mf", weights=path)
    kernel = np.asarray(model.stem.layers[0].kernel[...])
    np.testing.assert_array_equal(kernel, sd["stem.conv.weight"].transpose(2, 3, 1, 0))
    mnv3 = tmp_path / "mobilenetv3_small_100.pth"
    torch.save({k: torch.from_numpy(v) for k, v in fake_state_dict(RECORDED["mobilenetv3_small_100"]["keys"]).items()}, mnv3)
    with pytest.raises(ValueError, match=r"timm MobileNetV3 checkpoint, trained with BatchNorm eps 1e-5, but the model's is "
                                         r"\[0.001\].*norm_eps=1e-5"):
        models.create("mobilenet_v3_small", weights=mnv3)
    assert models.create("mobilenet_v3_small", weights=mnv3, norm_eps=1e-5) is not None


def _zeros(timm_name):  # the recorded names and shapes, without the memory
    return {k: np.broadcast_to(np.float32(0), shape) for k, shape in RECORDED[timm_name]["keys"]}


def test_names_and_refusals():
    keys, convnext = _zeros("convnext_tiny"), abstract("convnext_tiny")
    renamed = timm_to_torchvision(keys, convnext)
    assert renamed.keys() >= {"features.0.0.weight", "features.1.0.layer_scale", "features.2.1.weight",
                              "features.7.2.block.5.bias", "classifier.2.weight"}
    eff = timm_to_torchvision(_zeros("efficientnet_b0"), abstract("efficientnet_b0"))
    assert {"features.1.0.block.1.fc1.weight", "features.2.0.block.3.1.running_var", "features.8.0.weight"} <= eff.keys()
    mnv2 = timm_to_torchvision(_zeros("mobilenetv2_100"), abstract("mobilenet_v2"))
    assert {"features.1.conv.1.weight", "features.2.conv.3.weight", "features.18.1.bias"} <= mnv2.keys()
    vgg = {"features.0.weight": np.zeros((64, 3, 3, 3)), "pre_logits.fc1.weight": np.arange(4 * 8 * 49.0).reshape(4, 8, 7, 7),
           "pre_logits.fc2.weight": np.zeros((4, 4, 1, 1)), "head.fc.bias": np.zeros(10)}
    tv = timm_to_torchvision(vgg, abstract("vgg11"))  # timm's 7x7 conv flattens in torchvision's (C, H, W) order
    assert sorted(tv) == ["classifier.0.weight", "classifier.3.weight", "classifier.6.bias", "features.0.weight"]
    np.testing.assert_array_equal(tv["classifier.0.weight"][1, 50:53], [442, 443, 444])
    assert timm_family({"conv1.weight": 0, "fc.weight": 0}) is None  # torchvision's own names pass through
    mnv3_sd = _zeros("mobilenetv3_small_100")
    mnv3 = timm_to_torchvision(mnv3_sd, abstract("mobilenet_v3_small", norm_eps=1e-5))
    assert {"features.1.block.1.fc2.bias", "features.12.1.running_var", "classifier.0.bias", "classifier.3.weight"} <= mnv3.keys()
    with pytest.raises(ValueError, match=r"timm_to_torchvision: a timm MobileNetV3 checkpoint, trained with BatchNorm eps "
                                         r"1e-5, but the model's is \[0.001\].*norm_eps=1e-5"):
        timm_to_torchvision(mnv3_sd, abstract("mobilenet_v3_small"))
    with pytest.raises(ValueError, match="ConvNeXt needs a timm convnext checkpoint, but the state dict is a timm regnet one"):
        timm_to_torchvision(_zeros("regnety_004"), convnext)
    with pytest.raises(ValueError, match="timm checkpoints convert for .*not ResNet"):
        timm_to_torchvision(keys, abstract("resnet18"))
    with pytest.raises(ValueError, match="no rule renames 'stages.0.blocks.0.extra.weight'"):
        timm_to_torchvision({**keys, "stages.0.blocks.0.extra.weight": None}, convnext)
