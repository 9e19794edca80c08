"""MLPerf Storage verdicts: configs before they run, and real run folders (with their provenance.json)."""
import json
import shutil

import pytest
import yaml

from dldriver.cli import main
from dldriver.config import load_workload, resolved_dict
from dldriver.generate import generate_dataset
from dldriver.units import GiB
from dldriver.mlperf.folders import read_run, run_folders
from dldriver.mlperf.rules import V2_0, V3_0
from dldriver.mlperf.verdict import CLOSED, INVALID, OPEN, Verdict, config_findings, runs_findings

W = "configs/workloads/"


def verdict(config, overrides=(), edition=V2_0, hosts=2, accelerators=16, gib=128, drop_caches=False) -> Verdict:
    reference = resolved_dict(load_workload(config))
    workload = load_workload(config, list(overrides))
    return Verdict(edition.name, tuple(config_findings(
        edition, reference, resolved_dict(workload), hosts=hosts, accelerators=accelerators,
        host_memory_bytes=gib * GiB, drop_caches=drop_caches, workload=workload)))


def rules(v: Verdict, division=None) -> set[str]:
    return {f.rule_id for f in v.findings if division is None or f.division == division}


def test_closed_config():
    v = verdict(W + "mlperf/unet3d_a100.yaml", ["dataset.num_files_train=56000", "reader.read_threads=8",
                                        "dataset.data_folder=/mnt/unet3d"])
    assert v.division == CLOSED
    assert rules(v) == {"trainingClosedSubmissionParameters"}


def test_open_only_override():
    v = verdict(W + "mlperf/unet3d_a100.yaml", ["dataset.num_files_train=56000", "reader.data_loader=native"])
    assert v.division == OPEN
    assert rules(v, OPEN) == {"trainingOpenSubmissionParameters"}
    assert any("reader.data_loader = 'native' (the file says 'pytorch') is allowed in OPEN only" in f.sentence
               for f in v.findings)


def test_forbidden_override():
    v = verdict(W + "mlperf/unet3d_a100.yaml", ["dataset.num_files_train=56000", "train.computation_time=0.1"])
    assert v.division == INVALID
    assert rules(v, INVALID) == {"trainingClosedSubmissionParameters"}
    [sentence] = [f.sentence for f in v.findings if f.division == INVALID]
    assert sentence.startswith("train.computation_time = ") and "0.636" in sentence
    assert sentence.endswith("may not be changed in either division")


def test_too_few_files():
    v = verdict(W + "mlperf/unet3d_a100.yaml", ["dataset.num_files_train=55999"])
    assert v.division == INVALID
    assert rules(v, INVALID) == {"trainingRecalculateDatasetSize"}
    assert "below the 56000 files the 500 steps rule asks" in next(
        f.sentence for f in v.findings if f.division == INVALID)


def test_odirect_only_for_unet3d():
    v = verdict(W + "mlperf/cosmoflow_h100.yaml", ["dataset.num_files_train=130000", "reader.odirect=True"],
                hosts=1, accelerators=16, gib=64)
    assert rules(v, INVALID) == {"trainingOdirectModel"}


def test_v3_workloads_and_subset_mode():
    assert rules(verdict(W + "mlperf/resnet50_h100.yaml", ["dataset.num_files_train=999999"], edition=V3_0),
                 INVALID) == {"trainingWorkload"}
    subset_70b = verdict(W + "mlperf/llama3_70b.yaml", ["checkpoint.mode=subset", "model.parallelism.data=8"],
                         edition=V3_0, hosts=1, accelerators=8, drop_caches=True)
    assert rules(subset_70b, INVALID) == {"checkpointSubsetRunValidation"}
    assert verdict(W + "mlperf/llama3_70b.yaml", ["checkpoint.mode=subset", "model.parallelism.data=8"],
                   edition=V2_0, hosts=1, accelerators=8, drop_caches=True).division == CLOSED


def test_checkpoint_process_counts_and_the_3x_rule():
    assert verdict(W + "mlperf/llama3_8b.yaml", hosts=1, accelerators=8, gib=16).division == CLOSED
    split = verdict(W + "mlperf/llama3_8b.yaml", hosts=1, accelerators=8, gib=64)
    assert rules(split, INVALID) == {"checkpointDataSizeRatio"}
    assert verdict(W + "mlperf/llama3_8b.yaml", hosts=1, accelerators=8, gib=64, drop_caches=True).division == CLOSED
    assert verdict(W + "mlperf/llama3_8b.yaml", ["checkpoint.num_checkpoints_read=0"], hosts=1, accelerators=8,
                   gib=64).division == CLOSED
    assert rules(verdict(W + "mlperf/llama3_8b.yaml", hosts=1, accelerators=6, gib=16),
                 INVALID) == {"checkpointClosedMpiProcesses"}
    assert verdict(W + "mlperf/llama3_405b.yaml", hosts=64, accelerators=1024, gib=16).division == OPEN


# Real runs: a workload file of the test's own (model unet3d) sized so that MLPerf's steps rule asks for
# 10 files (500 steps x 1 accelerator x batch 1 / 50 samples per file) and a run takes about a second.
def _reference(tmp_path, compute: float):
    doc = {"model": {"name": "unet3d"}, "framework": "pytorch",
           "workflow": {"generate_data": False, "train": True, "checkpoint": False},
           "dataset": {"data_folder": str(tmp_path / "data"), "format": "npy", "num_files_train": 10,
                       "num_samples_per_file": 50, "record_length_bytes": 512},
           "reader": {"data_loader": "native", "batch_size": 1, "read_threads": 1},
           "train": {"epochs": 1, "computation_time": compute}, "metric": {"au": 0.9}}
    path = tmp_path / f"unet3d_{compute}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Five runs that keep up (3 ms compute per step) and one that cannot (no compute: AU near 0)."""
    root = tmp_path_factory.mktemp("mlperf-runs")
    keeps_up, starved = _reference(root, 0.003), _reference(root, 0.0)
    generate_dataset(load_workload(keeps_up), processes=1, progress=False)
    for k in range(1, 6):
        assert main(["run", keeps_up, "-q", "-o", str(root / "closed" / f"rep{k}")]) == 0
    assert main(["run", starved, "-q", "-o", str(root / "starved" / "rep1")]) == 0
    return root, keeps_up, starved


def _runs_verdict(reference, folders, edition=V2_0, gib=0.00004):
    records = [read_run(f, int(gib * GiB)) for f in folders]
    return Verdict(edition.name, tuple(runs_findings(edition, resolved_dict(load_workload(reference)), records)))


def test_run_folders_record_provenance(runs):
    root, keeps_up, _ = runs
    prov = json.loads((root / "closed" / "rep1" / "provenance.json").read_text())
    assert prov["schema"] == "dldriver-run-provenance/1"
    assert prov["dldriver"]["git_commit"] != "" and prov["launcher"] == "dldriver"
    assert prov["ranks"] == 1 and prov["hosts"] == 1 and prov["caches_dropped"] is False
    assert prov["workload"]["source"] == keeps_up and len(prov["workload"]["rule_config_hash"]) == 16
    assert prov["numpy"] != "unknown" and prov["host"]["memory_GiB"] > 0


def test_five_closed_runs(runs):
    root, keeps_up, _ = runs
    folders = run_folders([root / "closed"])
    assert len(folders) == 5
    v = _runs_verdict(keeps_up, folders)
    assert v.division == CLOSED, [f.line() for f in v.findings]


def test_four_runs(runs):
    root, keeps_up, _ = runs
    v = _runs_verdict(keeps_up, run_folders([root / "closed"])[:4])
    assert rules(v, INVALID) == {"trainingRunCount"}
    assert "4 runs given; the rules ask for 5" in v.findings[0].sentence
    v3 = _runs_verdict(keeps_up, run_folders([root / "closed"]), edition=V3_0)
    assert "5 runs given; the rules ask for 6 (1 warm-up + 5 measured)" in [f.sentence for f in v3.findings][0]


def test_under_the_au_floor(runs, tmp_path):
    root, _, starved = runs
    for k in range(2, 6):
        shutil.copytree(root / "starved" / "rep1", tmp_path / f"rep{k}")
    v = _runs_verdict(starved, [root / "starved" / "rep1"] + [tmp_path / f"rep{k}" for k in range(2, 6)])
    assert rules(v, INVALID) == {"trainingAcceleratorUtilizationCheck"}
    assert "is below the 90 % minimum" in v.findings[0].sentence


def test_runs_with_too_little_memory_rule_data(runs):
    root, keeps_up, _ = runs
    v = _runs_verdict(keeps_up, run_folders([root / "closed"]), gib=1)     # 5 GiB of data needed
    assert rules(v, INVALID) == {"trainingRecalculateDatasetSize"}


def test_check_cli(runs, capsys):
    root, keeps_up, _ = runs
    assert main(["mlperf", "check", keeps_up, "--runs", str(root / "closed"), "--host-memory-gib", "0.00004"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"CLOSED by MLPerf Storage v2.0 rules: 5 run(s) of {keeps_up}")
    assert "not MLPerf's reference implementation" in out
    assert main(["mlperf", "check", W + "mlperf/unet3d_a100.yaml", "reader.batch_size=3", "--hosts", "2",
                 "--accelerators-per-host", "8", "--host-memory-gib", "128", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["division"] == INVALID and {f["rule"] for f in data["findings"]} == {
        "trainingClosedSubmissionParameters", "trainingRecalculateDatasetSize"}


def test_checkpoint_run_folder_verdict(tmp_path):
    out = tmp_path / "ckpt"
    assert main(["checkpoint", W + "mlperf/llama3_8b.yaml", "checkpoint.num_checkpoints_write=1",
                 "checkpoint.num_checkpoints_read=1", "checkpoint.time_between_checkpoints=0",
                 f"checkpoint.checkpoint_folder={tmp_path / 'c'}", "--ranks", "1", "--checkpoint-scale", "0.000001",
                 "-q", "-o", str(out)]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["storage_uri"] == f"file://{tmp_path / 'c'}" and prov["framework"]["name"] == "torch"
    v = _runs_verdict(W + "mlperf/llama3_8b.yaml", [out], gib=16)
    assert v.division == INVALID
    assert sorted((f.division, f.rule_id, f.sentence.split(" ")[0]) for f in v.findings) == [
        (CLOSED, "checkpointClosedCheckpointParameters", "checkpoint.checkpoint_folder"),
        (INVALID, "checkpointClosedCheckpointParameters", str(out) + ":"),         # --checkpoint-scale
        (INVALID, "checkpointClosedCheckpointParameters", "checkpoint.time_between_checkpoints"),
        (INVALID, "checkpointClosedMpiProcesses", "1"),                             # CLOSED requires 8
        (OPEN, "checkpointClosedCheckpointParameters", "checkpoint.num_checkpoints_read"),   # 1, not 10
        (OPEN, "checkpointClosedCheckpointParameters", "checkpoint.num_checkpoints_write")]
