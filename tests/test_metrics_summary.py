"""Run-folder files with DLIO's keys, the atomic writer, and the system sampler."""
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from dldriver.metrics.formulas import CheckpointOp, GiB, block_metrics, eval_metrics
from dldriver.metrics.summary import (SUMMARY_KEYS, Phase, build_metric, build_summary, epoch_output,
                                      epoch_stats, rank_output, staged_run_folder, timestamp)
from dldriver.metrics.system import SystemSampler, host_info
from dldriver.outputs import RUN_MARKER, write_marker

TRAIN_KEYS = {f"train_{k}" for k in (
    "au_percentage", "au_mean_percentage", "au_stdev_percentage", "au_meet_expectation",
    "throughput_samples_per_second", "throughput_mean_samples_per_second",
    "throughput_stdev_samples_per_second", "io_mean_MB_per_second", "io_stdev_MB_per_second")}
EVAL_KEYS = {k.replace("train_", "eval_", 1) for k in TRAIN_KEYS}
CKPT_KEYS = {f"{op}_checkpoint_{k}" for op in ("save", "load") for k in (
    "io_mean_GB_per_second", "io_stdev_GB_per_second", "duration_mean_seconds",
    "duration_stdev_seconds")} | {"checkpoint_size_GB"}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
HOST = {"hostname": "h0", "host_cpu_count": 8, "host_processor_name": "cpu", "host_cpuinfo": {},
        "host_meminfo": {}, "host_memory_GB": 16.0}


def test_train_metric_values_and_keys():
    # epochs AU 80, 90 -> mean 85, stdev 5; samples/s 100, 300 -> mean 200, stdev 100;
    # MB/s = 200 * 524288 B / 2**20 = 100 MiB/s, stdev 100 * 0.5 = 50
    m = build_metric([80.0, 90.0], [100.0, 300.0], 524288, 0.85)
    assert set(m) == TRAIN_KEYS
    assert m["train_au_mean_percentage"] == pytest.approx(85)
    assert m["train_au_stdev_percentage"] == pytest.approx(5)
    assert m["train_au_meet_expectation"] == "success"
    assert m["train_throughput_mean_samples_per_second"] == pytest.approx(200)
    assert m["train_throughput_stdev_samples_per_second"] == pytest.approx(100)
    assert m["train_io_mean_MB_per_second"] == pytest.approx(100)
    assert m["train_io_stdev_MB_per_second"] == pytest.approx(50)


def test_eval_and_checkpoint_keys_appear_when_given():
    ops = [CheckpointOp(2.0, GiB)]
    m = build_metric([95.0], [10.0], 1024, 0.9, eval_au=[50.0], eval_throughput=[5.0],
                     saves=ops, loads=ops, checkpoint_size_gb=1.0)
    assert set(m) == TRAIN_KEYS | EVAL_KEYS | CKPT_KEYS
    assert m["eval_au_meet_expectation"] == "fail"
    assert m["save_checkpoint_io_mean_GB_per_second"] == pytest.approx(0.5)  # 1 GiB / 2 s


def summary(**extra):
    metric = build_metric([np.float64(91.0)], [np.float64(12.5)], 4096, 0.9)
    return build_summary(start=0.0, end=60.5, num_accelerators=4, num_hosts=2,
                         hosts=[HOST, HOST | {"hostname": "h1", "host_memory_GB": 1.0}],
                         num_files_train=24, num_files_eval=0, num_samples_per_file=3,
                         data_size_per_host_GB=2.0, epochs=1, metric=metric,
                         dldriver={"bytes_read": 1234} | extra)


def test_summary_keys_are_dlio_keys_plus_dldriver():
    s = summary()
    assert list(s) == list(SUMMARY_KEYS) + ["dldriver"]
    assert s["potential_caching"] == [1, 0]  # 16 GB > 2 GB fits; 1 GB <= 2 GB does not
    assert s["host_cpu_count"] == [8, 8] and s["hostname"] == "h0"
    assert STAMP.match(s["start"]) and STAMP.match(s["end"])
    assert json.loads(json.dumps(s, default=float))["metric"]["train_au_percentage"] == [91.0]


def test_rank_output_and_epoch_stats_shapes():
    block = Phase(start=100.0, end=110.0, load=[1.0] * 5, compute=[0.5] * 5, proc=[1.5] * 5)
    ev = Phase(start=111.0, end=113.0, load=[0.1] * 2, compute=[0.2] * 2, proc=[0.3] * 2)
    results = {"block1": block_metrics(10.0, block.proc, block.compute, 4),
               "eval": eval_metrics(2.0, ev.proc, ev.compute, 2)}
    out = rank_output({1: epoch_output({"block1": block, "eval": ev}, results)}, HOST, 2.0)
    assert list(out) == ["host_memory_GB", "host_cpu_count", "host_processor_name", "host_cpuinfo",
                         "host_meminfo", "potential_caching", "1", "hostname"]
    assert set(out["1"]) == {"load", "proc", "compute", "au", "throughput"}
    assert out["1"]["compute"] == {"block1": [0.5] * 5, "eval": [0.2] * 2}
    # block: T = 10 - 1.5 = 8.5, AU = 100 * 2.0 / 8.5; eval: 2 steps / 2 s * 2 = 2.0
    assert out["1"]["au"]["block1"] == pytest.approx(200 / 8.5)
    assert out["1"]["throughput"]["eval"] == pytest.approx(2.0)
    stats = epoch_stats(100.0, 114.0, {"block1": block, "eval": ev},
                        {"save_ckpt1": (113.0, 113.5, 2.0)})
    assert stats["duration"] == "14.00" and stats["block1"]["duration"] == "10.00"
    assert STAMP.match(stats["eval"]["start"]) and stats["save_ckpt1"]["duration"] == 0.5
    assert stats["start"] == timestamp(100.0)


def test_atomic_writer_leaves_nothing_final_on_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with staged_run_folder(out) as folder:
            (folder / "summary.json").write_text("{}")
            raise RuntimeError("decode failed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_replaces_old_result_and_stale_partials(tmp_path):
    out = tmp_path / "run"
    with staged_run_folder(out) as folder:   # an earlier run, which carries the run marker
        (folder / "old.json").write_text("{}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    killed = tmp_path / f"run.partial-{dead}"  # a killed earlier run's partial folder
    killed.mkdir()
    write_marker(killed, RUN_MARKER, "run")
    with staged_run_folder(out) as folder:
        (folder / "summary.json").write_text("{}")
        assert (out / "old.json").exists()  # the old result stays until the new one is complete
    assert sorted(p.name for p in out.iterdir()) == [".dldriver-run", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_host_info_has_dlio_fields():
    info = host_info()
    assert info["host_cpu_count"] >= 1 and info["host_memory_GB"] > 0 and info["hostname"]


def test_system_sampler_summary():
    with SystemSampler(interval=0.02) as sampler:
        data = bytearray(8 * 2**20)  # some RSS to see
        time.sleep(0.1)
        deadline = time.monotonic() + 30  # a busy machine may hold the sampling thread back a while
        while not sampler._cpu and time.monotonic() < deadline:
            time.sleep(0.02)
    s = sampler.summary
    assert s["samples"] >= 1 and s["rss_peak_bytes"] >= s["rss_mean_bytes"] > len(data) // 2
    assert set(s) >= {"cpu_percent_mean", "disk_read_bytes", "disk_write_bytes", "net_recv_bytes",
                      "net_sent_bytes", "seconds"}
