"""A small CNN trained for a few steps on a dl-driver dataset, measured as a dl-driver run folder.

    python examples/torch_cnn.py /tmp/data out/torch          # or s3://bucket/data (AWS_* set)
"""
from __future__ import annotations

import sys

import torch

from common import ensure_dataset, tiny_workload
from dldriver.frameworks.measure import Measurement
from dldriver.torch import DlioPyTorchDataLoader


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(64, 2))


def main(data_folder: str, output: str) -> dict:
    doc = tiny_workload(data_folder, "npz", "pytorch")
    ensure_dataset(doc)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = DlioPyTorchDataLoader.from_config(doc, pin_memory=device == "cuda")
    net = model().to(device)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.01)
    with Measurement(loader, output) as run:
        for epoch in (1, 2):
            for batch in run.epoch(epoch):
                x = batch.to(device, non_blocking=True).float().unsqueeze(1) / 255
                labels = (x.mean(dim=(1, 2, 3)) > 0.5).long()
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(x), labels)
                loss.backward()
                optimiser.step()
    print(f"loss {loss.item():.4f}; AU {run.summary['metric']['train_au_mean_percentage']:.1f} %; {output}")
    return run.summary


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
