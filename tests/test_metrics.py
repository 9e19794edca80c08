"""DLIO's formulas pinned by hand-computed numbers (the arithmetic is in the comments)."""
import os

import pytest

from dldriver.errors import DlDriverError
from dldriver.metrics import caching
from dldriver.metrics.formulas import (GiB, MiB, CheckpointOp, PhaseResult, block_metrics,
                                       checkpoint_op, checkpoint_stats, epoch_au, epoch_throughput,
                                       eval_metrics, expected_compute_seconds, latency_percentiles,
                                       mean_stdev, meet_expectation, nominal_mb_per_second,
                                       rank_epoch, true_mb_per_second)

approx = pytest.approx
# One block of 5 steps, batch 4, 10 s of wall time (barriers included).
PROC = [2.0, 1.0, 1.0, 1.0, 1.0]
COMPUTE = [0.5, 0.8, 0.8, 0.8, 0.8]


def test_block_default_exclusions():
    # s=1, e=0: T = 10 - proc[0] = 10 - 2 = 8; compute[1:5] = 4 * 0.8 = 3.2 -> AU = 100 * 3.2 / 8 = 40
    # steps counted = 5 - 1 - 0 = 4 -> 4 / 8 * 4 = 2.0 samples/s (HEAD's (5 - 2) / 8 * 4 = 1.5)
    r = block_metrics(10.0, PROC, COMPUTE, 4)
    assert (r.au, r.throughput, r.steps, r.counted_steps, r.seconds) == (approx(40), approx(2), 5, 4, 8)


def test_block_exclude_start_and_end():
    # s=1, e=2: T = 10 - 2 - (1 + 1) = 6; compute[1:3] = 1.6 -> AU = 160 / 6 = 26.667
    # counted = 5 - 1 - 2 = 2 -> 2 / 6 * 4 = 1.3333
    r = block_metrics(10.0, PROC, COMPUTE, 4, exclude_start=1, exclude_end=2)
    assert r.au == approx(80 / 3) and r.throughput == approx(4 / 3) and r.seconds == approx(6)


def test_block_without_exclusions():
    # T = 10; compute = 0.5 + 3.2 = 3.7 -> AU 37; 5 / 10 * 4 = 2.0
    r = block_metrics(10.0, PROC, COMPUTE, 4, exclude_start=0)
    assert (r.au, r.throughput) == (approx(37), approx(2))


def test_block_matches_head_when_two_steps_are_excluded():
    # s=2: T = 10 - 3 = 7; compute[2:] = 2.4 -> AU 34.286; counted = 3 = HEAD's n - 2 -> 3/7*4
    r = block_metrics(10.0, PROC, COMPUTE, 4, exclude_start=2)
    assert r.au == approx(240 / 7) and r.throughput == approx((5 - 2) / 7 * 4)


@pytest.mark.parametrize("proc,compute,s,e", [([1.0], [0.5], 1, 0), ([1.0, 1.0], [0.5, 0.5], 1, 1),
                                              ([], [], 1, 0), ([1.0, 1.0], [0.0, 0.0], 0, 0)])
def test_block_with_nothing_counted_is_zero(proc, compute, s, e):
    r = block_metrics(3.0, proc, compute, 4, s, e)
    assert r.au == 0.0 and (r.throughput == 0.0 or sum(compute) == 0)


def test_eval_au_excludes_but_throughput_does_not():
    # AU: T = 5 - 1 = 4; compute[1:] = 1.5 -> 37.5; throughput: 4 steps / 5 s * batch 2 = 1.6
    r = eval_metrics(5.0, [1.0] * 4, [0.5] * 4, 2)
    assert (r.au, r.throughput, r.steps) == (approx(37.5), approx(1.6), 4)


def test_rank_epoch_is_step_weighted_over_blocks():
    # AU: (40 * 5 + 20 * 15) / 20 = 25; samples/s: (2 * 5 + 1 * 15) / 20 = 1.25
    blocks = [PhaseResult(40, 2, 5, 4, 8), PhaseResult(20, 1, 15, 14, 9)]
    assert rank_epoch(blocks) == (approx(25), approx(1.25))
    assert rank_epoch([]) == (0.0, 0.0)


def test_epoch_au_is_rank_mean_and_throughput_rank_sum():
    # (25 + 35 + 45) / 3 = 35; 1.25 + 2 + 3.5 = 6.75
    assert epoch_au([25, 35, 45]) == approx(35)
    assert epoch_throughput([1.25, 2, 3.5]) == approx(6.75)
    assert epoch_au([]) == 0.0


def test_mean_and_population_stdev():
    # mean 40 / 8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32; 32 / 8 = 4 -> stdev 2 (not sqrt(32/7))
    assert mean_stdev([2, 4, 4, 4, 5, 5, 7, 9]) == (approx(5), approx(2))
    assert mean_stdev([]) == (0.0, 0.0)


def test_mb_per_second_is_mib():
    # 1000 samples/s * 131072 B = 131072000 B/s / 1048576 = 125 MiB/s
    assert nominal_mb_per_second(1000, 131072) == approx(125)
    # 50 MiB in 2 s = 25 MiB/s
    assert true_mb_per_second(50 * MiB, 2.0) == approx(25)
    assert true_mb_per_second(10, 0) == 0.0


def test_meet_expectation_boundary():
    assert meet_expectation(90.0, 0.9) == "success"  # >= : the threshold itself passes
    assert 0.55 * 100 > 55.0  # DLIO's threshold would be 55.00000000000001: exactly 55 fails there
    assert meet_expectation(55.0, 0.55) == "success"
    assert meet_expectation(89.9999, 0.9) == "fail"
    assert meet_expectation(70.0, 0.7) == "success"


def test_latency_percentiles():
    # 0, 1, ..., 100: the k-th percentile with linear interpolation is exactly k
    assert latency_percentiles([float(i) for i in range(101)]) == {
        "p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert latency_percentiles([]) == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}


def test_checkpoint_multi_rank_rule():
    # the slowest rank's 4 s; 1 GiB + 1 GiB over 4 s = 0.5 GiB/s (rank 0's own 2 s would say 1.0)
    op = checkpoint_op([2.0, 4.0], [GiB, GiB])
    assert (op.seconds, op.bytes, op.gib_per_second) == (4.0, 2 * GiB, approx(0.5))
    # second op 2 GiB in 2 s = 1.0 GiB/s: durations 4, 2 -> mean 3, stdev 1; rates 0.5, 1 -> 0.75, 0.25
    stats = checkpoint_stats([op, CheckpointOp(2.0, 2 * GiB)])
    assert stats == {"duration_mean": approx(3), "duration_stdev": approx(1),
                     "gbps_mean": approx(0.75), "gbps_stdev": approx(0.25)}


def test_expected_compute_seconds():
    assert expected_compute_seconds(100, 0.5, epochs=3) == approx(150)  # 100 * 0.5 * 3


def test_data_size_per_host_and_potential_caching():
    # ppn 4 * nspf 2 * 1000 files // 8 ranks = 1000 samples * 1 MiB = 1000 MiB = 0.9765625 GiB
    assert caching.data_size_per_host_gb(1000, 2, MiB, 8, 4) == approx(0.9765625)
    # 1 * 1 * 10 // 3 = 3 whole samples (floor before the record length) * 1 GiB = 3 GiB
    assert caching.data_size_per_host_gb(10, 1, GiB, 3, 1) == approx(3.0)
    # DLIO: 0 when host memory <= data size, else 1
    assert caching.potential_caching(3.0, [2.0, 3.0, 4.0]) == [0, 0, 1]


def test_drop_caches_without_permission_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(caching, "DROP_CACHES", str(tmp_path / "missing" / "drop_caches"))
    monkeypatch.setattr(os, "sync", lambda: None)
    with pytest.raises(DlDriverError, match="--drop-caches needs root"):
        caching.drop_caches()


def test_drop_caches_writes_3(monkeypatch, tmp_path):
    target = tmp_path / "drop_caches"
    monkeypatch.setattr(caching, "DROP_CACHES", str(target))
    monkeypatch.setattr(os, "sync", lambda: None)
    caching.drop_caches()
    assert target.read_text() == "3\n"


def test_evict_files(tmp_path):
    paths = [tmp_path / f"f{i}" for i in range(2)]
    for p in paths:
        p.write_bytes(b"x" * 8192)
    assert caching.evict_files(map(str, paths)) == 2
    with pytest.raises(DlDriverError, match="missing"):
        caching.evict_files([str(tmp_path / "missing")])
