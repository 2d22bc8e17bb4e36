"""Train the shipped digits workloads (workloads/digits-mlp.yaml, digits-cnn.yaml) and write their weights.

    python tools/train_digits.py            # writes workloads/digits-mlp.npz and workloads/digits-cnn.npz

Deterministic: PyTorch on the CPU, one thread, deterministic algorithms, every random draw from seeded
generators (the initial weights and the order of the mini-batches), so a run on the same machine and
software writes the same bytes. Training uses the digits training split only (index mod 10 in 0..5,
accelsim.values.labelled_data); the test split's fp32 accuracy is printed twice: by PyTorch and by accelsim's
own fp32 run on the written weights (the number tests/test_digits.py asserts). The models are the
workloads' layers one for one, so the state dict maps to the ``<layer>.weight`` / ``<layer>.bias`` keys.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accelsim.values.labelled_data import digits_split

SEED = 0
EPOCHS = {"digits-mlp": 60, "digits-cnn": 150}
BATCH = 32
LEARNING_RATE = 3e-3


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 64), nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Cnn(nn.Module):
    """conv1 -> (dw -> pw) + conv1 -> conv2 (stride 2) -> global average -> fc, ReLUs as in the YAML."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv1(x))
        y = torch.relu(self.pw(torch.relu(self.dw(a))) + a)
        y = torch.relu(self.conv2(y))
        return self.fc(y.mean(dim=(2, 3)))


MODELS = {"digits-mlp": (Mlp, (64,)), "digits-cnn": (Cnn, (1, 8, 8))}


def train(name: str) -> dict[str, np.ndarray]:
    """The model's weights after training on the training split, as float32 arrays by state-dict key."""
    make, shape = MODELS[name]
    torch.manual_seed(SEED)
    model = make()
    x, y = digits_split()["train"]
    inputs = torch.from_numpy(x.reshape(-1, *shape))
    labels = torch.from_numpy(y)
    order = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_of = nn.CrossEntropyLoss()
    for _ in range(EPOCHS[name]):
        for batch in torch.randperm(len(labels), generator=order).split(BATCH):
            optimizer.zero_grad()
            loss_of(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    return {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def torch_accuracy(name: str, weights: dict[str, np.ndarray]) -> float:
    make, shape = MODELS[name]
    model = make()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x, y = digits_split()["test"]
    with torch.no_grad():
        predicted = model(torch.from_numpy(x.reshape(-1, *shape))).argmax(dim=1).numpy()
    return float(np.mean(predicted == y))


def accelsim_accuracy(name: str) -> float:
    """accelsim's fp32 top-1 on the test split with the weights file just written."""
    from accelsim.config import load_hardware, load_workload
    from accelsim.values.accuracy import Variant, evaluate
    from accelsim.values.labelled_data import load_labelled, workload_classes
    from accelsim.values.tensors import materialize

    workload = load_workload(name)
    data = load_labelled(
        "digits", tuple(workload.input_shape), workload_classes(workload.shapes[-1].output_shape, workload.name)
    )
    (row,) = evaluate(workload, load_hardware(None), materialize(workload).params, data, [Variant("fp32")])
    return row.top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "workloads", help="folder of the .npz files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in MODELS:
        weights = train(name)
        buffer = io.BytesIO()
        np.savez(buffer, **weights)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        (args.out / f"{name}.npz").write_bytes(buffer.getvalue())
        print(f"{name}: fp32 test top-1 {torch_accuracy(name, weights):.6f} (PyTorch)", flush=True)
        if args.out == REPO / "workloads":
            print(f"{name}: fp32 test top-1 {accelsim_accuracy(name):.6f} (accelsim)", flush=True)


if __name__ == "__main__":
    main()
