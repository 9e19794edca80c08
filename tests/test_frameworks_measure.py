"""A real (tiny) torch training loop measured with dldriver.frameworks.measure: the run folder is
dldriver run's, and aggregate reads it beside an emulated run of the same config."""
from __future__ import annotations

import json
import time

import pytest
import torch

from dldriver.aggregate.collect import collect
from dldriver.engine.run import run_workload
from dldriver.errors import DlDriverError
from dldriver.frameworks.measure import Measurement
from dldriver.frameworks.pytorch import DlioPyTorchDataLoader

from test_run_helpers import make_dataset, workload_doc

COMPUTE = 0.02


def test_measured_loop_writes_a_run_folder_that_aggregates_with_dldriver_run(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch", files=5, samples=3,
                       train={"epochs": 2, "computation_time": COMPUTE})
    w = make_dataset(tmp_path, doc)
    results = tmp_path / "results"
    run_workload(w, output=results / "tiny" / "pytorch" / "file" / "r1" / "rep1", quiet=True)
    loader = DlioPyTorchDataLoader.from_config(doc, num_workers=2)
    model = torch.nn.Linear(256, 1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    out = results / "tiny" / "pytorch-real" / "file" / "r1" / "rep1"
    with Measurement(loader, out) as run:
        for epoch in (1, 2):
            for batch in run.epoch(epoch):
                optimiser.zero_grad()
                model(batch.float().reshape(len(batch), -1)).pow(2).mean().backward()
                optimiser.step()
                time.sleep(COMPUTE)  # a compute step of known length
    summary = json.loads((out / "summary.json").read_text())
    assert set(json.loads((out / "0_output.json").read_text())) >= {"1", "2", "hostname"}
    assert set(json.loads((out / "0_per_epoch_stats.json").read_text())) == {"1", "2"}
    m, ours = summary["metric"], summary["dldriver"]
    assert len(m["train_au_percentage"]) == 2 and 50 < m["train_au_mean_percentage"] <= 100
    assert m["train_throughput_mean_samples_per_second"] > 0
    assert ours["measured"] and ours["coverage_ok"] and ours["bytes_read"] > 2 * 14 * 256
    assert ours["loader"] == "pytorch" and ours["steps_per_epoch"] == 7
    steps = json.loads((out / "0_output.json").read_text())["1"]["compute"]["block1"]
    assert len(steps) == 7 and min(steps) >= COMPUTE
    rows = collect(results).rows
    assert sorted(r["loader"] for r in rows) == ["pytorch", "pytorch-real"]


def test_a_loop_that_measured_nothing_is_an_error(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch", files=2, samples=1)
    make_dataset(tmp_path, doc)
    with pytest.raises(DlDriverError, match="no epoch was measured"):
        with Measurement(DlioPyTorchDataLoader.from_config(doc), tmp_path / "out"):
            pass
    assert not (tmp_path / "out").exists()

