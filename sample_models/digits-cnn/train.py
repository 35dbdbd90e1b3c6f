"""Train the bundled digits CNN on scikit-learn's 8x8 digits and export it.

Reproduce (about 20 s on 2 CPU cores):

    python sample_models/digits-cnn/train.py

Writes model.pt (state_dict), model.toml (model card) and model.onnx (same weights, card
embedded in the graph's metadata) next to this file. Needs the `test` extra for the ONNX
export (onnxscript).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F

from attrib_audit.data import load_data
from attrib_audit.models import ModelCard, load_model
from attrib_audit.models.onnx_graph import CARD_METADATA_KEY
from attrib_audit.models.zoo import digits_cnn

HERE = Path(__file__).resolve().parent
SEED, EPOCHS, BATCH, LR = 0, 30, 64, 1e-3
CARD = ModelCard(
    name="digits-cnn",
    arch="attrib_audit.models.zoo:digits_cnn",
    arch_kwargs={"num_classes": 10},
    input_shape=(1, 8, 8),
    value_range=(0.0, 1.0),
    classes=tuple(str(i) for i in range(10)),
)


def main() -> None:
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    train = load_data("digits:train", input_shape=CARD.input_shape, value_range=CARD.value_range)
    test = load_data("digits:test", input_shape=CARD.input_shape, value_range=CARD.value_range)
    model = digits_cnn(10)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(test.x).argmax(1) == test.y).float().mean().item()
    print(f"digits:test accuracy {acc:.4f} ({len(test)} images)")

    torch.save(model.state_dict(), HERE / "model.pt")
    (HERE / "model.toml").write_text(
        f"# digits:test accuracy {acc:.4f}; made by train.py (seed {SEED})\n" + CARD.to_toml()
    )
    onnx_path = HERE / "model.onnx"
    torch.onnx.export(
        model,
        (test.x[:2],),
        str(onnx_path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=18,
        external_data=False,
    )
    graph = onnx.load(str(onnx_path))
    meta = {k: v for k, v in CARD.to_dict().items() if k not in ("arch", "arch_kwargs")}
    graph.metadata_props.add(key=CARD_METADATA_KEY, value=json.dumps(meta))
    onnx.save(graph, str(onnx_path))
    for path in (HERE / "model.pt", onnx_path):
        loaded = load_model(path)
        with torch.no_grad():
            acc = (loaded.predict(test.x).argmax(1) == test.y).float().mean().item()
        print(f"{path.name}: reloaded, accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
