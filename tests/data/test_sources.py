import numpy as np
import pytest
import torch
from PIL import Image

from attrib_audit.data import load_data, read_idx
from attrib_audit.data import sources as sources_module
from attrib_audit.errors import AttribAuditError

CARD = {"input_shape": (1, 8, 8), "value_range": (0.0, 1.0)}


def _all(data, batch_size=7):
    xs, ys = zip(*data.batches(batch_size), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_digits_builtin_shapes_labels_and_range():
    test = load_data("digits:test", **CARD)
    train = load_data("digits:train", **CARD)
    assert len(test) == 360 and len(train) == 1437
    x, y = _all(test)
    assert x.shape == (360, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert set(y.tolist()) == set(range(10))
    assert load_data("digits", **CARD).source == "digits:test"


def test_value_range_and_shape_follow_the_card():
    x, _ = _all(
        load_data("digits:test", input_shape=(1, 16, 16), value_range=(-1.0, 1.0), samples=10)
    )
    assert x.shape == (10, 1, 16, 16) and x.min() >= -1 and x.max() <= 1 and x.min() < -0.9


def test_npz_and_pt_tensors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    y = np.arange(6)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(str(tmp_path / "d.npz"), **CARD)
    got, labels = _all(data)
    np.testing.assert_allclose(got.numpy(), x / 255.0, rtol=0, atol=1e-6)
    assert labels.tolist() == list(range(6))
    torch.save({"x": torch.rand(3, 1, 8, 8)}, tmp_path / "d.pt")
    data = load_data(str(tmp_path / "d.pt"), **CARD)
    assert _all(data)[1].tolist() == [-1, -1, -1]


def test_float_tensors_outside_the_range_are_refused(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.full((2, 1, 8, 8), 3.0, dtype=np.float32))
    with pytest.raises(AttribAuditError, match="outside the model's value range"):
        load_data(str(tmp_path / "bad.npz"), **CARD)


def _png(path, value, size=(12, 10)):
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint8)).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    for cls, value in (("3", 30), ("7", 200)):
        (tmp_path / cls).mkdir()
        for i in range(2):
            _png(tmp_path / cls / f"{i}.png", value)
    data = load_data(str(tmp_path), classes=[str(i) for i in range(10)], **CARD)
    x, y = _all(data, batch_size=3)
    assert x.shape == (4, 1, 8, 8) and y.tolist() == [3, 3, 7, 7]
    torch.testing.assert_close(x[0].max(), torch.tensor(30 / 255), rtol=0, atol=1e-6)


def test_flat_folder_is_unlabelled_and_streams(tmp_path, monkeypatch):
    for i in range(5):
        _png(tmp_path / f"img{i}.png", 10 * i)
    data = load_data(str(tmp_path), **CARD)
    read = []
    real = sources_module._read_image
    monkeypatch.setattr(sources_module, "_read_image", lambda p, *a: read.append(p) or real(p, *a))
    batches = data.batches(2)
    x, y = next(batches)
    assert len(read) == 2  # only the first batch has been read
    assert y.tolist() == [-1, -1]
    assert len(load_data(str(tmp_path), samples=3, **CARD)) == 3


def test_rgb_model_reads_rgb(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    data = load_data([str(tmp_path / "a.jpg")], input_shape=(3, 16, 16), value_range=(0, 1))
    assert _all(data)[0].shape == (1, 3, 16, 16)


def test_fashion_mnist_missing_names_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr(sources_module, "FASHION_MNIST_DIR", tmp_path)
    with pytest.raises(AttribAuditError, match="apt-get install -y dataset-fashion-mnist"):
        load_data("fashion-mnist:test", input_shape=(1, 28, 28), value_range=(0, 1))


def test_fashion_mnist_reads_idx_files(tmp_path, monkeypatch):
    import gzip

    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    labels = np.array([9, 0, 3, 1], dtype=np.uint8)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(
            b"\x00\x00\x08\x03"
            + b"".join(d.to_bytes(4, "big") for d in (4, 28, 28))
            + images.tobytes()
        )
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + labels.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    monkeypatch.setattr(sources_module, "FASHION_MNIST_DIR", tmp_path)
    data = load_data("fashion-mnist:test", input_shape=(1, 28, 28), value_range=(0, 1))
    x, y = _all(data)
    assert y.tolist() == [9, 0, 3, 1] and data.classes[9] == "Ankle boot"
    np.testing.assert_allclose(x[:, 0].numpy(), images / 255, atol=1e-6)


def test_unknown_source():
    with pytest.raises(AttribAuditError, match="neither a file, a folder nor a built-in"):
        load_data("imagenet", **CARD)
