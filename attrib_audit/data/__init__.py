"""Inputs: image folders, .npz/.pt tensors and built-in data sets, converted to a model card."""

from __future__ import annotations

from attrib_audit.data.convert import image_to_tensor, to_card
from attrib_audit.data.sources import (
    BUILTINS,
    FASHION_MNIST_CLASSES,
    Data,
    FileData,
    TensorData,
    data_for,
    load_data,
    read_idx,
)

__all__ = [
    "BUILTINS",
    "FASHION_MNIST_CLASSES",
    "Data",
    "FileData",
    "TensorData",
    "image_to_tensor",
    "data_for",
    "load_data",
    "read_idx",
    "to_card",
]
