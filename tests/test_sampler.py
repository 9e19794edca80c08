"""The shared sampler: coverage, equal steps, shuffling modes, determinism, worker split."""
import itertools

import pytest
from hypothesis import given, settings, strategies as st

from dldriver.dataset.sampler import (Sampler, batches, coverage, epoch_assignment, fresh_entropy,
                                      split_among_workers, steps_per_epoch)
from dldriver.errors import DlDriverError

MODES = ("off", "seed", "random")


def all_ranks(files, nspf, ranks, batch, epoch=1, fs="off", ss="off", seed=123, change=True,
              entropy=None):
    if entropy is None and "random" in (fs, ss):
        entropy = fresh_entropy()
    return [epoch_assignment(files, nspf, ranks, r, batch, epoch, fs, ss, seed, change,
                             entropy=entropy) for r in range(ranks)]


def assert_sharded(per_rank, files, nspf, batch):
    ranks = len(per_rank)
    total = files * nspf
    steps = total // (batch * ranks)
    assert all(len(reads) == steps * batch for reads in per_rank)  # equal steps: no barrier deadlock
    cov = coverage(per_rank, files, nspf, batch)
    assert cov.ok, cov
    assert cov.expected_missing == total - steps * batch * ranks < batch * ranks


@pytest.mark.parametrize("files", [13, 24, 25, 145])
@pytest.mark.parametrize("batch", [4, 16])
@pytest.mark.parametrize("nspf", [1, 3])
@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("fs,ss", [("off", "off"), ("seed", "seed"), ("random", "random"),
                                   ("seed", "off"), ("off", "random")])
def test_uneven_counts_cover_every_sample_once(files, batch, nspf, ranks, fs, ss):
    for epoch in (1, 2):
        assert_sharded(all_ranks(files, nspf, ranks, batch, epoch, fs, ss), files, nspf, batch)


def test_unshuffled_order_is_contiguous_and_keeps_files_together():
    # 5 files x 3 samples = 15; 2 ranks x batch 2 -> 3 steps, 6 samples each, 3 dropped (file 4).
    r0, r1 = all_ranks(5, 3, 2, 2)
    assert r0 == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert r1 == [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]


def test_file_shuffle_keeps_samples_of_a_file_consecutive():
    reads = epoch_assignment(40, 4, 1, 0, 4, 1, "seed", "off")
    files = [f for f, _ in reads]
    assert files != sorted(files)
    for k in range(0, len(reads), 4):  # each run of 4 is one whole file, samples in order
        assert reads[k:k + 4] == [(files[k], s) for s in range(4)]


def test_sample_shuffle_reorders_within_the_rank_share_only():
    plain = all_ranks(10, 4, 2, 4)
    shuffled = all_ranks(10, 4, 2, 4, ss="seed")
    for a, b in zip(plain, shuffled):
        assert a != b and sorted(a) == sorted(b)


def test_sample_shuffle_is_not_a_no_op_for_dlio_bug_case():
    # dlio tests' sample_shuffle_bug: 2 files x 4 samples, seed shuffle: each file's local indices
    # are exactly {0, 1, 2, 3}, and (unlike DLIO HEAD's pytorch path) the order really changes.
    reads = epoch_assignment(2, 4, 1, 0, 1, 1, "seed", "seed")
    assert {f: {s for g, s in reads if g == f} for f in (0, 1)} == {0: {0, 1, 2, 3}, 1: {0, 1, 2, 3}}
    assert reads != sorted(reads)


@pytest.mark.parametrize("fs,ss", [("seed", "off"), ("off", "seed"), ("seed", "seed")])
def test_seed_is_deterministic_and_seed_change_epoch_changes_order(fs, ss):
    args = (30, 2, 3, 1, 4)
    e1 = epoch_assignment(*args, 1, fs, ss, 7, True)
    assert e1 == epoch_assignment(*args, 1, fs, ss, 7, True)
    assert e1 != epoch_assignment(*args, 2, fs, ss, 7, True)
    fixed = epoch_assignment(*args, 1, fs, ss, 7, False)
    assert fixed == epoch_assignment(*args, 2, fs, ss, 7, False)  # same order every epoch
    assert e1 != epoch_assignment(*args, 1, fs, ss, 8, True)


def test_off_ignores_seed_and_epoch():
    assert epoch_assignment(9, 2, 2, 1, 2, 1, seed=1) == epoch_assignment(9, 2, 2, 1, 2, 5, seed=2)


def test_random_changes_every_epoch_and_run_but_ranks_agree():
    entropy = fresh_entropy()
    e1 = all_ranks(60, 1, 3, 4, 1, "random", "off", entropy=entropy)
    e2 = all_ranks(60, 1, 3, 4, 2, "random", "off", entropy=entropy)
    assert e1 != e2
    assert e1 != all_ranks(60, 1, 3, 4, 1, "random", "off")
    assert_sharded(e1, 60, 1, 4)


def test_random_over_several_ranks_needs_shared_entropy():
    with pytest.raises(DlDriverError, match="shared entropy"):
        epoch_assignment(8, 1, 2, 0, 2, 1, "random")


def test_one_rank_random_sampler_is_stable_within_an_epoch():
    s = Sampler(50, 1, 1, 0, 5, "random", "random")
    assert s.for_epoch(1) == s.for_epoch(1) != s.for_epoch(2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=2), "rank 2"), (dict(batch_size=0), "batch_size"),
    (dict(file_shuffle="on"), "reader.file_shuffle"), (dict(sample_shuffle="yes"), "sample_shuffle")])
def test_bad_arguments_name_the_problem(kwargs, match):
    args = dict(num_files=4, samples_per_file=1, ranks=2, rank=0, batch_size=1, epoch=1) | kwargs
    with pytest.raises(DlDriverError, match=match):
        epoch_assignment(**args)


def test_fewer_samples_than_one_global_batch_gives_zero_steps():
    assert all_ranks(3, 1, 2, 2) == [[], []]


def test_drop_last_off_hands_out_every_sample():
    per_rank = [epoch_assignment(7, 2, 3, r, 4, 1, drop_last=False) for r in range(3)]
    assert [len(p) for p in per_rank] == [4, 5, 5]
    assert sorted(itertools.chain(*per_rank)) == [(f, s) for f in range(7) for s in range(2)]
    assert Sampler(7, 2, 3, 0, 4, drop_last=False).dropped_samples == 0


def test_sampler_properties_and_batches():
    s = Sampler(25, 3, 2, 1, 4, "seed", "seed")
    # T = 75; floor(75 / (4 * 2)) = 9 steps; 9 * 4 * 2 = 72 read; 3 dropped.
    assert (s.total_samples, s.steps_per_epoch, s.dropped_samples) == (75, 9, 3)
    b = s.batches(3)
    assert len(b) == 9 and all(len(x) == 4 for x in b)
    assert sum(b, []) == s.for_epoch(3)
    assert steps_per_epoch(75, 2, 4) == 9


def test_from_workload_reads_reader_and_train_sections():
    from dldriver.config.model import Workload
    w = Workload()
    w.dataset.num_files_train, w.dataset.num_files_eval, w.dataset.num_samples_per_file = 10, 4, 2
    w.reader.batch_size, w.reader.batch_size_eval, w.reader.file_shuffle = 3, 2, "seed"
    w.train.seed, w.train.seed_change_epoch = 5, False
    train = Sampler.from_workload(w, ranks=2, rank=1)
    assert (train.num_files, train.batch_size, train.file_shuffle, train.seed) == (10, 3, "seed", 5)
    assert not train.seed_change_epoch
    ev = Sampler.from_workload(w, ranks=2, rank=1, split="eval")
    assert (ev.num_files, ev.batch_size, ev.steps_per_epoch) == (4, 2, 2)


def test_split_among_workers_round_robin_restores_order():
    items = batches(list(range(22)), 4)  # 6 batches, last one short
    parts = split_among_workers(items, 4)
    assert [len(p) for p in parts] == [2, 2, 1, 1]
    merged = [p[i] for i in range(2) for p in parts if i < len(p)]
    assert merged == items
    assert split_among_workers(items, 1) == [items]
    with pytest.raises(DlDriverError):
        split_among_workers(items, 0)


def test_coverage_flags_duplicates_missing_and_outside():
    cov = coverage([[(0, 0), (0, 0)], [(1, 0), (9, 0)]], 3, 1, 2)
    assert (cov.read, cov.duplicates, cov.outside, cov.missing) == (4, 1, 1, 1)
    assert not cov.ok and cov.to_dict()["ok"] is False


@settings(max_examples=120, deadline=None)
@given(files=st.integers(0, 60), nspf=st.integers(1, 5), ranks=st.integers(1, 5),
       batch=st.integers(1, 17), fs=st.sampled_from(MODES), ss=st.sampled_from(MODES),
       epoch=st.integers(0, 3), seed=st.integers(-2**40, 2**40))
def test_property_sharding_invariants(files, nspf, ranks, batch, fs, ss, epoch, seed):
    per_rank = all_ranks(files, nspf, ranks, batch, epoch, fs, ss, seed)
    assert_sharded(per_rank, files, nspf, batch)
    if "random" not in (fs, ss):
        assert per_rank == all_ranks(files, nspf, ranks, batch, epoch, fs, ss, seed)


def test_coverage_with_capped_steps_expects_the_unread_rest_missing():
    # 24 samples, 2 ranks x batch 4 -> 3 steps; capped at 2 steps: 2 * 4 * 2 = 16 read, 8 missing
    per_rank = [epoch_assignment(24, 1, 2, r, 4, 1)[:8] for r in range(2)]
    assert not coverage(per_rank, 24, 1, 4).ok
    cov = coverage(per_rank, 24, 1, 4, steps=2)
    assert cov.ok and cov.expected_missing == 8
