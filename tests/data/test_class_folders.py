"""Class sub-folders of an image folder map to the model card's classes, or fail clearly."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attrib_audit.data import load_data
from attrib_audit.data.sources import SYNSETS_PATH, imagenet_synsets
from attrib_audit.errors import AttribAuditError

CARD = {"input_shape": (1, 8, 8), "value_range": (0.0, 1.0)}
INDICES = tuple(str(i) for i in range(1000))  # a 1000-class card without names
NAMED = ("cat", "dog", "bird")


def _folders(root: Path, *names: str) -> str:
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir()
        Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8)).save(root / name / "a.png")
    return str(root)


def _labels(source: str, classes) -> dict[str, int]:
    data = load_data(source, classes=classes, **CARD)
    return {Path(f).parent.name: int(y) for f, y in zip(data.files, data.targets(), strict=True)}


def test_shipped_synsets_are_imagenet_1k_in_index_order():
    lines = SYNSETS_PATH.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 1000 and lines == sorted(lines)
    assert all(re.fullmatch(r"n\d{8}", s) for s in lines)
    assert imagenet_synsets() == tuple(lines)
    assert lines[0] == "n01440764" and lines[1] == "n01443537" and lines[-1] == "n15075141"


@pytest.mark.parametrize("classes", [INDICES, tuple(f"class {i}" for i in range(1000))])
def test_synset_folders_take_their_imagenet_index(tmp_path, classes):
    source = _folders(tmp_path, "n15075141", "n01440764", "n01443537")
    assert _labels(source, classes) == {"n01440764": 0, "n01443537": 1, "n15075141": 999}
    x, y = next(load_data(source, classes=classes, **CARD).batches(3))
    assert x.shape == (3, 1, 8, 8) and y.tolist() == [0, 1, 999]


def test_synset_outside_imagenet_1k_is_named(tmp_path):
    source = _folders(tmp_path, "n01440764", "n00000001")
    with pytest.raises(AttribAuditError, match="n00000001 are not ImageNet-1k synsets"):
        load_data(source, classes=INDICES, **CARD)


def test_synsets_for_a_named_model_without_1000_classes_are_refused(tmp_path):
    source = _folders(tmp_path, "n01440764", "n01443537", "n15075141")
    with pytest.raises(AttribAuditError, match="model has 3 classes, not ImageNet-1k's 1000"):
        load_data(source, classes=NAMED, **CARD)


def test_synsets_for_an_unnamed_model_are_numbered_one_per_class(tmp_path):
    """Imagenette-style: K synset folders for an unnamed K-class model, as ImageFolder does."""
    source = _folders(tmp_path, "n03000684", "n01440764")
    assert _labels(source, ("0", "1")) == {"n01440764": 0, "n03000684": 1}
    with pytest.raises(AttribAuditError, match="model has 3 classes"):
        load_data(source, classes=("0", "1", "2"), **CARD)


def test_class_name_folders(tmp_path):
    source = _folders(tmp_path, "dog", "bird")
    assert _labels(source, NAMED) == {"bird": 2, "dog": 1}


def test_class_names_come_before_synsets(tmp_path):
    classes = tuple(reversed(imagenet_synsets()))  # a card named by synsets in another order
    source = _folders(tmp_path, "n01440764")
    assert _labels(source, classes) == {"n01440764": 999}


@pytest.mark.parametrize("classes", [NAMED, ("0", "1", "2")])
def test_index_folders(tmp_path, classes):
    source = _folders(tmp_path, "2", "0", "01")
    assert _labels(source, classes) == {"0": 0, "01": 1, "2": 2}


@pytest.mark.parametrize("classes", [NAMED, ("0", "1", "2")])
def test_index_folder_outside_the_classes_is_named(tmp_path, classes):
    source = _folders(tmp_path, "1", "3", "12")
    with pytest.raises(AttribAuditError, match=r"12, 3 are class indices outside .* 3 classes"):
        load_data(source, classes=classes, **CARD)


def test_folder_matching_no_named_class_is_a_clear_error(tmp_path):
    source = _folders(tmp_path, "cat", "dog", "horse", "zebra", "yak", "emu")
    message = (
        r"class folder\(s\) emu, horse, yak and 1 more match none of the model's 3 classes; "
        r"name the folders by class names like 'cat' or indices 0..2$"
    )
    with pytest.raises(AttribAuditError, match=message):
        load_data(source, classes=NAMED, **CARD)


def test_named_model_never_numbers_folders_in_sorted_order(tmp_path):
    source = _folders(tmp_path, "ant", "bee", "cow")  # three folders, three classes
    with pytest.raises(AttribAuditError, match="ant, bee, cow match none"):
        load_data(source, classes=NAMED, **CARD)


def test_a_thousand_class_model_names_synsets_as_accepted(tmp_path):
    source = _folders(tmp_path, "tench", "cat")
    classes = ("tench",) + tuple(f"c{i}" for i in range(1, 1000))
    with pytest.raises(AttribAuditError, match="synsets like n01440764 or indices 0..999"):
        load_data(source, classes=classes, **CARD)


def test_mixed_kinds_of_names_are_refused(tmp_path):
    source = _folders(tmp_path, "2", "cat")
    with pytest.raises(AttribAuditError, match="mix kinds of names"):
        load_data(source, classes=NAMED, **CARD)


def test_unnamed_model_numbers_one_folder_per_class_in_sorted_order(tmp_path):
    source = _folders(tmp_path, "dog", "cat", "bird")
    assert _labels(source, ("0", "1", "2")) == {"bird": 0, "cat": 1, "dog": 2}


@pytest.mark.parametrize(
    ("names", "classes"),
    [
        (("cat", "dog"), ("0", "1", "2")),  # fewer folders than classes
        (("cat", "dog", "7"), ("0", "1", "2")),  # an index among names
        (("cat",) + imagenet_synsets()[:999], INDICES),  # one per class, but synsets among them
    ],
)
def test_unnamed_model_refuses_folders_it_cannot_number(tmp_path, names, classes):
    source = _folders(tmp_path, *names)
    with pytest.raises(AttribAuditError, match="have no names, so the class folders"):
        load_data(source, classes=classes, **CARD)


def test_without_classes_synsets_and_indices_are_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _labels(_folders(tmp_path / "a", "n15075141", "n01443537"), None) == {
        "n01443537": 1,
        "n15075141": 999,
    }
    assert _labels(_folders(tmp_path / "b", "5", "12"), None) == {"5": 5, "12": 12}


def test_labels_follow_the_folder_of_each_image(tmp_path):
    source = _folders(tmp_path, "bird", "cat")
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "cat" / "b.png")
    y = torch.cat([y for _, y in load_data(source, classes=NAMED, **CARD).batches(2)])
    assert y.tolist() == [2, 0, 0]


def test_a_folder_named_by_a_class_name_the_card_has_twice_is_refused(tmp_path):
    source = _folders(tmp_path, "crane", "cat")
    classes = ("cat", "crane", "dog", "crane")
    with pytest.raises(AttribAuditError, match="crane name more than one of the card's classes"):
        load_data(source, classes=classes, **CARD)


@pytest.mark.parametrize("size", [(300, 400), (500, 375), (224, 224)])
def test_resize_then_centre_crop_matches_torchvision_eval_transform(size):
    """The card's ``resize`` (torchvision's 232 for a 224 crop) against torchvision's own
    Resize(232) + CenterCrop(224) on the same photo-sized image."""
    from torchvision import transforms as T

    from attrib_audit.data import image_to_tensor

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    ours = image_to_tensor(img, (3, 224, 224), (0.0, 1.0), resize=232)
    theirs = T.Compose([T.Resize(232), T.CenterCrop(224), T.ToTensor()])(img)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
