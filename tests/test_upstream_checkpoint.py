"""Every checkpoint workload file of the upstream corpus (DLIO main's llama_*, MLPerf Storage main's llama3_*),
as shipped, run in checkpoint-only mode shrunk by overrides alone: one write and one read, no pause, one
rank instead of the model's TP x PP, every tensor scaled by 1e-7. The files written are the layout's, and
the read gives back every byte written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dldriver.checkpoint import checkpoint_layout
from dldriver.cli import main
from dldriver.config import load_workload

UPSTREAM = Path(__file__).parent / "data" / "upstream"
SCALE = 1e-7
# llama_1t.yaml as shipped also trains (with no loader): its checkpoint phase alone, as the MLPerf line runs it.
EXTRA = {"dlio-main/llama_1t.yaml": ["++workload.workflow.train=False"]}


def checkpoint_files() -> list[str]:
    found = []
    for source in ("dlio-main", "mlperf-main"):
        for path in sorted((UPSTREAM / source).glob("*.yaml")):
            workflow = yaml.safe_load(path.read_text()).get("workflow") or {}
            name = f"{source}/{path.name}"
            if workflow.get("checkpoint") and (not workflow.get("train", True) or name in EXTRA):
                found.append(name)
    return found


@pytest.mark.parametrize("name", checkpoint_files())
def test_upstream_checkpoint_file_runs_shrunk(name, tmp_path, capsys):
    path = UPSTREAM / name
    overrides = EXTRA.get(name, []) + [
        "++workload.model.parallelism.tensor=1", "++workload.model.parallelism.pipeline=1",
        "++workload.checkpoint.num_checkpoints_write=1", "++workload.checkpoint.num_checkpoints_read=1",
        "++workload.checkpoint.time_between_checkpoints=0",
        f"++workload.checkpoint.checkpoint_folder={tmp_path / 'ckpt'}"]
    code = main(["checkpoint", "-q", "--checkpoint-scale", str(SCALE), str(path), "-o", str(tmp_path / "out"),
                 *overrides])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    run = load_workload(path, overrides)
    (files,) = checkpoint_layout(run, 1, SCALE)
    written = {p.name: p.stat().st_size for p in (tmp_path / "ckpt" / "global_epoch1_step1").iterdir()}
    assert written == dict(files) and len(written) >= 2  # the model's and the optimizer's state at least
    ours = summary["dldriver"]
    assert [op["bytes"] for op in ours["saves"]] == [op["bytes"] for op in ours["loads"]] == [sum(written.values())]
    assert ours["fsync"] is True and ours["checkpoint_files"] == len(written)
    assert summary["metric"]["save_checkpoint_duration_mean_seconds"] > 0
    assert summary["metric"]["load_checkpoint_io_mean_GB_per_second"] > 0
