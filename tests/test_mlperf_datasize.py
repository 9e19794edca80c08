"""MLPerf Storage sizing: MLPerf's documented examples exactly, hand-computed figures, checkpoint sizes."""
import json

import pytest

from dldriver.units import GiB
from dldriver.cli import main
from dldriver.config import load_workload
from dldriver.errors import DlDriverError
from dldriver.mlperf.datasize import (RULE_MEMORY, RULE_STEPS, allowed_processes, checkpoint_size, scaled_files,
                                      workload_training_size)
from dldriver.mlperf.rules import V2_0, V3_0

W = "configs/workloads/mlperf/"


def size(name, hosts, per_host, gib, edition=V2_0):
    return workload_training_size(load_workload(W + name), hosts=hosts, accelerators_per_host=per_host,
                                  host_memory_bytes=gib * GiB, edition=edition)


# mlcommons/storage README.md (commit caa90c9): its `datasize` examples and the num_files_train its
# `datagen` line uses next. unet3d: "2 client machines with 128 GB each", --max-accelerators 16 -> the
# datagen example's 56000; resnet50 and cosmoflow: 1 host, 64 GB, 16 h100 -> 2557 and 121477.
@pytest.mark.parametrize("name, hosts, per_host, gib, files, rule", [
    ("unet3d_a100.yaml", 2, 8, 128, 56000, RULE_STEPS),
    ("resnet50_h100.yaml", 1, 16, 64, 2557, RULE_STEPS),
    ("cosmoflow_h100.yaml", 1, 16, 64, 121477, RULE_MEMORY),
])
def test_mlperf_documented_examples(name, hosts, per_host, gib, files, rule):
    result = size(name, hosts, per_host, gib)
    assert result.num_files_train == files
    assert result.rule == rule


# By hand: unet3d files are 146,600,628 B (1 sample, batch 7); resnet50 1251 x 114,660.07 B (batch 400);
# cosmoflow 2,828,486 B (1 sample, batch 1). Memory rule = 5 x hosts x GiB x 2^30 // file bytes,
# steps rule = 500 x accelerators x batch // samples per file.
@pytest.mark.parametrize("name, hosts, per_host, gib, by_memory, by_steps, subfolders", [
    ("unet3d_h100.yaml", 1, 4, 64, 2343, 14000, 1),          # 343,597,383,680 / 146,600,628 = 2343.8
    ("unet3d_h100.yaml", 1, 1, 1024, 37500, 3500, 3),        # 5,497,558,138,880 / 146,600,628 = 37500.3
    ("unet3d_a100.yaml", 2, 8, 128, 9375, 56000, 5),
    ("resnet50_h100.yaml", 4, 8, 256, 38326, 5115, 3),       # 6,400,000 / 1251 = 5115.9
    ("resnet50_h100.yaml", 1, 16, 64, 2395, 2557, 0),
    ("cosmoflow_h100.yaml", 1, 2048, 8, 15184, 1024000, 102),
    ("cosmoflow_h100.yaml", 1, 16, 64, 121477, 8000, 12),
])
def test_hand_computed_sizes(name, hosts, per_host, gib, by_memory, by_steps, subfolders):
    result = size(name, hosts, per_host, gib)
    assert (result.files_by_memory, result.files_by_steps) == (by_memory, by_steps)
    assert result.num_files_train == max(by_memory, by_steps)
    assert result.num_subfolders == subfolders
    assert result.disk_bytes == int(result.num_files_train * result.file_bytes)


def test_disk_space_of_the_unet3d_example():
    assert size("unet3d_a100.yaml", 2, 8, 128).disk_bytes == 56000 * 146600628


def test_datasize_cli_prints_the_generate_command_and_fragment(capsys):
    assert main(["datasize", W + "cosmoflow_h100.yaml", "reader.read_threads=8", "dataset.num_files_train=9",
                 "--accelerators-per-host", "16", "--host-memory-gib", "64"]) == 0
    out = capsys.readouterr().out
    assert "num_files_train: 121477 (the host memory rule sets it)" in out
    assert ("dldriver generate configs/workloads/mlperf/cosmoflow_h100.yaml reader.read_threads=8 "
            "dataset.num_files_train=121477 dataset.num_subfolders_train=12") in out
    assert "        - dataset.num_subfolders_train=12" in out


def test_datasize_cli_json_and_bad_flag(capsys):
    assert main(["datasize", W + "unet3d_a100.yaml", "--hosts", "2", "--accelerators-per-host", "8",
                 "--host-memory-gib", "128", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_files_train"] == 56000 and data["rule"] == RULE_STEPS
    assert main(["datasize", W + "unet3d_a100.yaml", "--hosts", "0"]) == 1
    assert capsys.readouterr().err.strip() == "error: --hosts: must be positive, got 0"


@pytest.mark.parametrize("files, scale, scaled", [(4000, 0.008, 32), (100, 0.29, 29), (56000, 1, 56000),
                                                 (3, 0.01, 1)])
def test_scaled_files_floor_after_rounding_and_at_least_one(files, scale, scaled):
    assert scaled_files(files, scale) == scaled


def test_datasize_cli_scale_generates_a_fraction_and_says_so(capsys):
    # unet3d at 4 MiB, batch 1, 8 accelerators, 1 GiB: 500 x 8 x 1 = 4000 files (memory rule: 5 x 256 = 1280).
    args = ["datasize", W + "unet3d_a100.yaml", "dataset.record_length_bytes=4194304", "reader.batch_size=1",
            "dataset.num_files_train=7", "--accelerators-per-host", "8", "--host-memory-gib", "1"]
    assert main(args + ["--scale", "0.008", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["num_files_train"], data["scale"], data["num_files_generate"]) == (4000, 0.008, 32)
    assert data["overrides"][-1] == "dataset.num_files_train=32" and "dataset.num_files_train=7" not in data["overrides"]
    assert data["disk_bytes"] == 32 * 4194304
    assert main(args + ["--scale", "0.008"]) == 0
    assert "scaled by 0.008: 32 files, below the rules' 4000" in capsys.readouterr().out
    assert main(args + ["--scale", "1.5"]) == 1
    assert capsys.readouterr().err.strip() == "error: --scale: must be above 0 and at most 1, got 1.5"
    assert main(["datasize", W + "llama3_8b.yaml", "--scale", "0.5"]) == 1
    assert capsys.readouterr().err.strip() == (f"error: --scale: {W}llama3_8b.yaml is a checkpoint-only workload; "
                                               "--scale shrinks training datasets")


def test_host_memory_defaults_to_this_host(capsys):
    import psutil

    assert main(["datasize", W + "unet3d_a100.yaml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["host_memory_bytes"] == psutil.virtual_memory().total


def _llama8b_rank_bytes() -> int:
    """llama3 8B (ZeRO 3 over 8 ranks) by hand: fp16 model tensors / 8 plus fp32 optimizer [P/8, 5H] x 3."""
    v, h, f, layers, dkv = 128256, 4096, 14336, 32, 4096 // 32 * 8
    layer = [h, h * (h + 2 * dkv), h * h, h, 2 * h * f, h * f]
    tensors = [v * h] + layer * layers + [v * h, h]
    params = sum(tensors)
    return sum(t // 8 for t in tensors) * 2 + (params // 8 * 3 + 5 * h * 3) * 4


# MLPerf's Table 2 (Submission_guidelines.md §2.2.1, Rules.md 4.3.4) gives the checkpoint sizes in GiB/TiB:
# 8B 105 GB, 70B 912 GB, 405B 5.29 TB (read as 5290 GiB). Its 1T figure, 18 TB, is mlpstorage's
# LLM_SIZE_BY_RANK 2571 + 15426, whose "optimizer" 15426 GiB is the whole checkpoint the layout sizes.
@pytest.mark.parametrize("name, world, total_gib, distinct_rank_sizes", [
    ("llama3_8b.yaml", 8, 105, 1),
    ("llama3_70b.yaml", 64, 911, 1),
    ("llama3_405b.yaml", 512, 5292, 5),
    ("llama3_1t.yaml", 1024, 15427, 4),
])
def test_llama3_checkpoint_sizes(name, world, total_gib, distinct_rank_sizes):
    result = checkpoint_size(load_workload(W + name), world_size=world, hosts=world // 8,
                             host_memory_bytes=512 * GiB, edition=V2_0)
    assert round(result.total_bytes / GiB) == total_gib
    assert len(set(result.rank_bytes)) == distinct_rank_sizes
    assert len(result.host_bytes) == world // 8 and sum(result.host_bytes) == result.total_bytes


def test_llama3_8b_per_rank_by_hand_and_the_3x_rule():
    w = load_workload(W + "llama3_8b.yaml")
    one_host = checkpoint_size(w, world_size=8, hosts=1, host_memory_bytes=64 * GiB, edition=V2_0)
    assert one_host.rank_bytes == (_llama8b_rank_bytes(),) * 8 == (14053202944,) * 8
    assert one_host.split_required             # 104.7 GiB < 3 x 64 GiB: write, flush, read
    assert not checkpoint_size(w, world_size=8, hosts=1, host_memory_bytes=32 * GiB, edition=V2_0).split_required
    with pytest.raises(DlDriverError, match="--hosts: 8 ranks cannot be spread evenly over 3 hosts"):
        checkpoint_size(w, world_size=8, hosts=3, host_memory_bytes=GiB, edition=V2_0)


def test_allowed_process_counts():
    assert allowed_processes("llama_8b_zero3", V2_0) == {"closed": 8, "subset": 8}
    assert allowed_processes("llama_70b", V2_0) == {"closed": 64, "subset": 8}
    assert allowed_processes("llama_405b", V2_0)["closed"] == 512
    assert allowed_processes("llama3_1t", V2_0)["closed"] == 1024
    assert allowed_processes("llama_70b", V3_0) == {"closed": 64}    # Rules.md 4.3.5: subset is 8B only
    assert allowed_processes("unet3d", V2_0) is None
