"""Data sources: image folders, single images, .npz/.pt tensors and built-in data sets.

Every source yields batches ``(x, y)`` with ``x`` (B, C, H, W) in the card's value range and
``y`` (B,) class indices, -1 where the source has no label (the model's prediction is used).
Folders stream: only the images of the current batch are read.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from attrib_audit.data.convert import IMAGE_SUFFIXES, image_to_tensor, to_card
from attrib_audit.errors import AttribAuditError, SettingError

FASHION_MNIST_DIR = Path(
    os.environ.get("ATTRIB_AUDIT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# the first 1,000 images of the Fashion-MNIST test set (MIT licence), shipped in the package
SLICE_PATH = Path(__file__).resolve().parent / "fashion_mnist_slice.npz"
# the 1,000 ILSVRC-2012 (ImageNet-1k) synsets in the standard class index order (sorted; 0 is
# n01440764 tench, 999 n15075141 toilet tissue), as also shipped by timm (Apache-2.0)
SYNSETS_PATH = Path(__file__).resolve().parent / "imagenet_synsets.txt"
_SYNSET = re.compile(r"n\d{8}")
BUILTINS = (
    "digits",
    "digits:train",
    "digits:test",
    "fashion-mnist:train",
    "fashion-mnist:test",
    "fashion-mnist:slice",
)


class Data(ABC):
    """A finite, ordered data source."""

    source: str
    classes: tuple[str, ...] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches ``(x, y)``: x (B, C, H, W) in the value range, y (B,) with -1 if unknown."""

    @abstractmethod
    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """The samples at ``indices`` (random access, for training)."""

    @property
    @abstractmethod
    def labelled(self) -> bool:
        """Whether every sample has a label (training needs them)."""

    @abstractmethod
    def targets(self) -> Tensor:
        """Every sample's label (N,), -1 where unknown; read without loading the images."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A hash of the samples and labels, so a resumed run can tell the data changed."""

    def check_labels(self, num_classes: int) -> None:
        """Every known label is a class of a model with ``num_classes`` outputs."""
        y = self.targets()
        outside = y >= num_classes
        if bool(outside.any()):
            raise AttribAuditError(
                f"{self.source}: {int(outside.sum())} label(s) are outside the model's "
                f"{num_classes} classes (largest {int(y.max())}); check the data or the card's "
                "classes"
            )


@dataclass
class TensorData(Data):
    """In-memory images and labels (already converted to the card)."""

    x: Tensor
    y: Tensor
    source: str
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, len(self), batch_size):
            yield self.x[i : i + batch_size], self.y[i : i + batch_size]

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.x[indices], self.y[indices]

    def targets(self) -> Tensor:
        return self.y

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(str((tuple(self.x.shape), str(self.x.dtype))).encode())
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @property
    def labelled(self) -> bool:
        return bool((self.y >= 0).all())


@dataclass
class FileData(Data):
    """Image files read lazily, one batch at a time."""

    files: list[Path]
    labels: list[int]
    shape: tuple[int, ...]
    value_range: tuple[float, float]
    source: str
    classes: tuple[str, ...] | None = None
    resize: int | None = None  # the shorter side before the centre crop (the card's)

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, len(self.files), batch_size):
            chunk = self.files[i : i + batch_size]
            x = torch.stack([self._read(f) for f in chunk])
            yield x, torch.tensor(self.labels[i : i + batch_size], dtype=torch.long)

    @property
    def labelled(self) -> bool:
        return all(label >= 0 for label in self.labels)

    def targets(self) -> Tensor:
        return torch.tensor(self.labels, dtype=torch.long)

    def fingerprint(self) -> str:
        h = hashlib.sha256(str((self.shape, self.value_range, self.labels)).encode())
        if self.resize is not None:
            h.update(f"resize {self.resize}".encode())
        for f in self.files:
            h.update(str(f).encode())
            try:
                with open(f, "rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(block)
            except OSError as exc:
                raise AttribAuditError(f"cannot read image {f}: {exc.strerror}") from None
        return h.hexdigest()

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        idx = [int(i) for i in indices]
        x = torch.stack([self._read(self.files[i]) for i in idx])
        return x, torch.tensor([self.labels[i] for i in idx], dtype=torch.long)

    def _read(self, path: Path) -> Tensor:
        return _read_image(path, self.shape, self.value_range, self.resize)


def _read_image(path: Path, shape, value_range, resize: int | None = None) -> Tensor:
    try:
        with Image.open(path) as img:
            return image_to_tensor(img, shape, value_range, resize=resize)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise AttribAuditError(f"cannot read image {path}: {exc}") from None


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folder(path: Path, shape, value_range, classes) -> FileData:
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and _images_in(p))
    if not subdirs:
        files = _images_in(path)
        if not files:
            raise AttribAuditError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return FileData(files, [-1] * len(files), shape, value_range, str(path))
    names = [d.name for d in subdirs]
    index = _class_index(path, names, classes)
    files, labels = [], []
    for d in subdirs:
        for f in _images_in(d):
            files.append(f)
            labels.append(index[d.name])
    if classes is None:
        classes = tuple(names) if list(index.values()) == list(range(len(names))) else None
    return FileData(files, labels, shape, value_range, str(path), classes)


@cache
def imagenet_synsets() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k synsets (``n01440764``, ...) in class index order."""
    return tuple(SYNSETS_PATH.read_text().split())


def _is_index(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _class_index(path: Path, names: list[str], classes) -> dict[str, int]:
    """Each class sub-folder's class index, by the first rule that every folder name fits:

    1. the card's class names (``tench``): that class;
    2. ImageNet-1k synsets (``n01440764``), for a model with 1000 classes: the synset's
       ImageNet index; a synset outside ImageNet-1k is an error, and so are synsets for a
       model with another number of classes (unless rule 4 numbers them);
    3. class indices (``0``, ``17``): that class; an index the model does not have is an error;
    4. any other names (``cat``, ``dog``; synsets for a model with K != 1000 classes) only for
       a model whose classes have no names (``0``..``K-1``), with exactly one folder per class
       and no folder that rules 2 or 3 would read: the sorted folders are classes 0..K-1, as
       torchvision's ``ImageFolder`` numbers them.

    Anything else is an error that names the folders, so a folder is never silently given
    another class.

    Without ``classes`` (the number of classes unknown) synsets of ImageNet-1k take their
    ImageNet index, indices are taken as they are and other names are numbered in sorted
    order.
    """
    synsets = imagenet_synsets()
    if classes is None:
        if all(n in synsets for n in names):
            return {n: synsets.index(n) for n in names}
        if all(_is_index(n) for n in names):
            return {n: int(n) for n in names}
        return {n: i for i, n in enumerate(names)}
    k = len(classes)
    if all(n in classes for n in names):
        twice = [n for n in names if classes.count(n) > 1]
        if twice:
            raise AttribAuditError(
                f"{path}: class folder(s) {_some(twice)} name more than one of the card's "
                "classes; name those folders by class index"
                + (" or ImageNet synset" if k == 1000 else "")
            )
        return {n: classes.index(n) for n in names}  # folder names are the card's classes
    unnamed = classes == tuple(str(i) for i in range(k))
    one_per_class = unnamed and len(names) == k
    if all(_SYNSET.fullmatch(n) for n in names):
        if k == 1000:
            unknown = [n for n in names if n not in synsets]
            if unknown:
                raise AttribAuditError(
                    f"{path}: class folder(s) {_some(unknown)} are not ImageNet-1k synsets; "
                    "rename or remove them"
                )
            return {n: synsets.index(n) for n in names}
        if not one_per_class:
            raise AttribAuditError(
                f"{path}: the class folders are ImageNet synsets ({_some(names)}) but the "
                f"model has {k} classes, not ImageNet-1k's 1000; name the folders by "
                + ("" if unnamed else "the card's class names or ")
                + f"index 0..{k - 1}"
            )
    elif all(_is_index(n) for n in names):
        outside = [n for n in names if int(n) >= k]
        if outside:
            raise AttribAuditError(
                f"{path}: class folder(s) {_some(outside)} are class indices outside the "
                f"model's {k} classes (0..{k - 1}); rename or remove them"
            )
        return {n: int(n) for n in names}
    index_like = [n for n in names if _is_index(n) or k == 1000 and _SYNSET.fullmatch(n)]
    if one_per_class and not index_like:
        return {n: i for i, n in enumerate(names)}  # numbered as torchvision's ImageFolder does
    if unnamed:
        raise AttribAuditError(
            f"{path}: the model's {k} classes have no names, so the class folders "
            f"({_some(names)}) are numbered in sorted order only if there is one folder per "
            "class and none is a class index"
            + (" or synset" if k == 1000 else "")
            + f"; name the folders by index 0..{k - 1} or give the card the class names"
        )
    accepted = f"class names like {classes[0]!r}"
    if k == 1000:
        accepted += ", ImageNet synsets like n01440764"
    accepted += f" or indices 0..{k - 1}"

    def fits(n: str) -> bool:
        return n in classes or k == 1000 and n in synsets or _is_index(n) and int(n) < k

    unmatched = [n for n in names if not fits(n)]
    if unmatched:
        raise AttribAuditError(
            f"{path}: class folder(s) {_some(unmatched)} match none of the model's {k} "
            f"classes; name the folders by {accepted}"
        )
    raise AttribAuditError(
        f"{path}: the class folders mix kinds of names ({_some(names)}); name them all by "
        f"{accepted}"
    )


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _tensors(path: Path, shape, value_range) -> TensorData:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zip, header and dtype errors alike: the file is bad
            raise AttribAuditError(f"cannot read {path} as .npz arrays: {exc}") from None
    else:
        try:
            arrays = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise AttribAuditError(
                f"cannot read {path} as a dict of tensors (x, y) saved by torch.save; it is "
                "corrupt or holds other objects"
            ) from None
    if not isinstance(arrays, dict) or "x" not in arrays:
        raise AttribAuditError(
            f"{path} must hold an array 'x' (N, C, H, W) and optionally 'y' (N,)"
        )
    x = _numeric(arrays["x"], path, "x")
    if x.shape[:1] == (0,) or x.numel() == 0:
        raise AttribAuditError(f"{path} holds no images (x has shape {tuple(x.shape)})")
    x = to_card(x, shape, value_range, origin=str(path))
    y = arrays.get("y")
    if y is None:
        y = torch.full((x.shape[0],), -1)
    else:
        y = _numeric(y, path, "y").reshape(-1)
        if y.dtype == torch.bool or (y.is_floating_point() and not bool((y == y.round()).all())):
            raise AttribAuditError(f"{path}: y must hold integer class indices")
        y = y.long()
        if bool((y < -1).any()):
            raise AttribAuditError(
                f"{path}: y holds {int(y.min())}; labels are class indices >= 0 (-1: unknown)"
            )
    if y.shape[0] != x.shape[0]:
        raise AttribAuditError(f"{path}: {x.shape[0]} images but {y.shape[0]} labels")
    return TensorData(x, y, str(path))


def _numeric(value, path: Path, name: str) -> Tensor:
    """An array of numbers as a tensor; anything else (strings, objects) is one clear error."""
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise AttribAuditError(f"{path}: {name} holds {value.dtype} values, not numbers")
        if np.iscomplexobj(value):
            raise AttribAuditError(f"{path}: {name} holds complex numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Tensor) and not value.is_complex():
        return value
    raise AttribAuditError(f"{path}: {name} is a {type(value).__name__}, not an array of numbers")


def _digits(split: str, shape, value_range) -> TensorData:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))  # fixed 80/20 split
    cut = int(0.8 * len(order))
    idx = order[:cut] if split == "train" else order[cut:]
    x = torch.from_numpy(d.images[idx].astype(np.float32)).unsqueeze(1)
    x = to_card(x, shape, value_range, origin="digits", raw_range=(0.0, 16.0))
    return TensorData(
        x,
        torch.from_numpy(d.target[idx]).long(),
        f"digits:{split}",
        tuple(str(i) for i in range(10)),
    )


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise AttribAuditError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_file(stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (FASHION_MNIST_DIR / name).is_file():
            return FASHION_MNIST_DIR / name
    raise AttribAuditError(
        f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR / stem} missing); install it with "
        "`apt-get install -y dataset-fashion-mnist` or set ATTRIB_AUDIT_FASHION_MNIST"
    )


def _fashion_mnist(split: str, shape, value_range, samples: int | None) -> TensorData:
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_fashion_file(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_fashion_file(f"{prefix}-labels-idx1-ubyte"))
    if samples is not None:
        images, labels = images[:samples], labels[:samples]
    x = to_card(
        torch.from_numpy(images.copy()).unsqueeze(1),
        shape,
        value_range,
        origin=f"fashion-mnist:{split}",
    )
    return TensorData(
        x,
        torch.from_numpy(labels.astype(np.int64)),
        f"fashion-mnist:{split}",
        FASHION_MNIST_CLASSES,
    )


def load_data(
    source: str | Sequence[str],
    *,
    input_shape: tuple[int, ...],
    value_range: tuple[float, float],
    classes: Sequence[str] | None = None,
    samples: int | None = None,
    resize: int | None = None,
) -> Data:
    """Open a data source for a model with the given input shape and value range.

    Args:
        source: a folder of images (class sub-folders as labels, or flat), an image file,
            an ``.npz``/``.pt`` file with ``x`` (N, C, H, W) and optionally ``y`` (N,), a
            built-in name (``digits``, ``digits:train|test``, ``fashion-mnist:train|test``),
            or a list of image files.
        classes: the model's class names; class sub-folders named by them, by ImageNet-1k
            synsets (a 1000-class model) or by class index take that class, and a folder
            that fits none of these is an error (the rules: :func:`_class_index`).
        samples: keep the first ``samples`` items.
        resize: image files have their shorter side resized to this many pixels before the
            centre crop to ``input_shape`` (default: just enough to cover the crop).
    """
    if len(input_shape) != 3:
        raise AttribAuditError(
            f"data needs an image input shape (C, H, W), the card says {list(input_shape)}"
        )
    if samples is not None and samples < 1:
        raise SettingError("samples", f"must be >= 1, got {samples}")
    if not isinstance(source, str):
        files = [Path(s) for s in source]
        for f in files:
            if not f.is_file():
                raise AttribAuditError(f"input {f} does not exist")
        data: Data = FileData(
            files, [-1] * len(files), input_shape, value_range, ", ".join(map(str, files))
        )
    else:
        data = _open(source, input_shape, value_range, classes, samples)
    if resize is not None and isinstance(data, FileData):
        data = dataclasses.replace(data, resize=resize)
    return _take(data, samples)


def _open(source: str, shape, value_range, classes, samples) -> Data:
    name, _, split = source.partition(":")
    if name == "digits" and split in ("", "train", "test"):
        return _digits(split or "test", shape, value_range)
    if name == "fashion-mnist":
        if split == "slice":
            data = _tensors(SLICE_PATH, shape, value_range)
            return TensorData(data.x, data.y, "fashion-mnist:slice", FASHION_MNIST_CLASSES)
        if split not in ("train", "test"):
            raise AttribAuditError(
                "use fashion-mnist:train, fashion-mnist:test or fashion-mnist:slice"
            )
        return _fashion_mnist(split, shape, value_range, samples)
    path = Path(source)
    if path.is_dir():
        return _folder(path, shape, value_range, tuple(classes) if classes else None)
    if path.is_file():
        if path.suffix in (".npz", ".pt", ".pth"):
            return _tensors(path, shape, value_range)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return FileData([path], [-1], shape, value_range, str(path))
        raise AttribAuditError(
            f"{path}: unknown data file type; use an image, a folder, .npz or .pt"
        )
    raise AttribAuditError(
        f"data source {source!r} is neither a file, a folder nor a built-in ({', '.join(BUILTINS)})"
    )


def _take(data: Data, samples: int | None) -> Data:
    if samples is None or samples >= len(data):
        return data
    if isinstance(data, TensorData):
        return TensorData(data.x[:samples], data.y[:samples], data.source, data.classes)
    assert isinstance(data, FileData)
    return dataclasses.replace(data, files=data.files[:samples], labels=data.labels[:samples])


def data_for(card, source: str | Sequence[str], samples: int | None = None) -> Data:
    """:func:`load_data` for a model with this card (its input shape, value range, class
    names and resize)."""
    return load_data(
        source,
        input_shape=card.input_shape,
        value_range=card.value_range,
        classes=card.classes,
        samples=samples,
        resize=card.resize,
    )
