"""Zoo architectures by name: ``torchvision:NAME@WEIGHTS`` and ``timm:NAME@TAG`` take the
card (input size, normalisation, class names) from the zoo's metadata of those weights; the
weights come from the local file, and nothing is downloaded."""

import sys

import pytest
import torch
import torchvision

from attrib_audit.errors import AttribAuditError
from attrib_audit.models import load_model
from attrib_audit.models.arch import parse_arch, zoo_card

SPEC = "torchvision:mobilenet_v3_small@IMAGENET1K_V1"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A local weights file of the architecture (random weights, the zoo's file format)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("zoo") / "mobilenet_v3_small.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    return path


def test_the_card_comes_from_torchvision_weights_metadata(weights):
    meta = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    loaded = load_model(weights, arch=SPEC)
    card = loaded.card
    (side,) = meta.transforms().crop_size
    assert card.input_shape == (3, side, side) and card.value_range == (0.0, 1.0)
    assert card.mean == tuple(meta.transforms().mean) and card.std == tuple(meta.transforms().std)
    assert card.classes == tuple(meta.meta["categories"]) and card.classes[0] == "tench"
    assert card.resize == meta.transforms().resize_size[0] == 256  # the eval transform's
    assert card.arch == SPEC


def test_flags_and_the_sidecar_override_the_metadata(weights, tmp_path):
    loaded = load_model(weights, arch=SPEC, input_shape=(3, 160, 160))
    assert loaded.card.input_shape == (3, 160, 160) and loaded.card.classes[0] == "tench"
    copy = tmp_path / "model.pth"
    copy.write_bytes(weights.read_bytes())
    # a sidecar may name a zoo spec without the trust flag: it runs torchvision's code only
    (tmp_path / "model.toml").write_text(
        f'arch = "{SPEC}"\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n'
    )
    card = load_model(copy).card
    assert card.mean == (0.5, 0.5, 0.5) and card.input_shape == (3, 224, 224)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchvision:mobilenet_v3_small@IMAGENET9K", "IMAGENET1K_V1"),
        ("torchvision:no_such_net@DEFAULT", "no classification model 'no_such_net'"),
        ("pkg.module:factory@V1", "only torchvision:NAME@WEIGHTS and timm:NAME@TAG"),
        ("torchvision:resnet18@V1 x", "name weights"),
        ("timm:resnet18@no_such_tag", "a1_in1k"),
    ],
)
def test_bad_zoo_specs_say_what_there_is(spec, message):
    with pytest.raises(AttribAuditError, match=message):
        zoo_card(spec)


def test_a_spec_without_weights_has_no_card_and_weights_kwargs_are_refused(weights):
    assert parse_arch("torchvision:resnet18(num_classes=10)").weights is None
    assert zoo_card("torchvision:resnet18") is None
    with pytest.raises(AttribAuditError, match="nothing is downloaded"):
        load_model(
            weights,
            arch="torchvision:mobilenet_v3_small(weights='DEFAULT')",
            input_shape=(3, 64, 64),
            value_range=(0.0, 1.0),
        )


def test_timm_by_name_with_its_pretrained_config(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    card = load_model(path, arch="timm:resnet18@a1_in1k").card
    cfg = timm.models.get_pretrained_cfg("resnet18.a1_in1k")
    assert card.input_shape == tuple(cfg.input_size) and card.mean == tuple(cfg.mean)
    assert len(card.classes) == 1000 and card.classes[0] == "tench"
    assert zoo_card("timm:resnet18@default")["input_shape"] == list(cfg.input_size)


def test_timm_missing_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(AttribAuditError, match=r"pip install 'attrib-audit\[timm\]'"):
        zoo_card("timm:resnet18@a1_in1k")


def test_timm_class_names_are_unique():
    pytest.importorskip("timm")
    classes = zoo_card("timm:resnet18@a1_in1k")["classes"]
    assert len(set(classes)) == 1000  # ImageNet's two cranes are told apart by their synsets
    assert classes[134] == "crane (n02012849)" and classes[517] == "crane (n03126707)"
