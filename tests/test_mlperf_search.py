"""The accelerator search's arithmetic: the sweep, the refinement, the result sentence."""
import pytest

from dldriver.mlperf.search import count_result, next_counts, refinement_count, search_result

SWEEP = [1, 2, 4, 8, 16]


def storage_that_holds(limit, sweep=SWEEP):
    """Run the search against a storage whose AU holds up to `limit` accelerators per host; every count
    run is recorded, as the workflow's cells would be."""
    results, rounds = {}, 0
    while todo := next_counts(sweep, results):
        rounds += 1
        for n in todo:
            au = 95.0 if n <= limit else 80.0
            results[n] = count_result(n, [au] * 5, floor=0.90, runs=5)
    return results, rounds


@pytest.mark.parametrize("limit, best, fail, counts_run", [
    (12, 12, 13, [1, 2, 4, 8, 12, 14, 13, 16]),      # 8 passes, 16 fails: 12, 14, 13
    (8, 8, 9, [1, 2, 4, 8, 12, 10, 9, 16]),
    (1, 1, 2, SWEEP),                                  # adjacent already: no refinement
    (16, 16, None, SWEEP),                             # nothing fails
    (0, None, 1, SWEEP),                               # even 1 fails
])
def test_search_finds_the_limit(limit, best, fail, counts_run):
    results, _ = storage_that_holds(limit)
    assert sorted(results) == sorted(counts_run)
    result = search_result(results)
    assert (result.best.count if result.best else None) == best
    assert (result.first_fail.count if result.first_fail else None) == fail


def test_next_counts_runs_the_whole_sweep_first():
    assert next_counts(SWEEP, {}) == SWEEP
    partial = {1: count_result(1, [95] * 5, 0.9, 5), 4: count_result(4, [50] * 5, 0.9, 5)}
    assert next_counts(SWEEP, partial) == [2, 8, 16]
    with pytest.raises(ValueError):
        next_counts([0, 2], {})


def test_a_count_needs_every_run_at_the_floor():
    assert count_result(3, [91, 92, 95, 90, 93], 0.90, 5).passed
    assert not count_result(3, [91, 92, 95, 89.99, 93], 0.90, 5).passed
    assert not count_result(3, [95] * 4, 0.90, 5).passed          # a run missing
    assert refinement_count(8, 16) == 12 and refinement_count(12, 13) is None


def test_result_sentences():
    results, _ = storage_that_holds(12)
    results[12] = count_result(12, [91.2] * 5, 0.9, 5)
    results[13] = count_result(13, [88.9] * 5, 0.9, 5)
    assert search_result(results).sentence("unet3d", "s3://bucket") == \
        "unet3d on s3://bucket: 12 accelerators per host (AU 91.2 % over 5 runs); 13 fail (88.9 %)"
    assert search_result(results, hosts=2).sentence("unet3d", "s3://b") == (
        "unet3d on s3://b: 12 accelerators per host, 24 in total over 2 hosts (AU 91.2 % over 5 runs); "
        "13 fail (88.9 %)")
    none, _ = storage_that_holds(0)
    assert search_result(none).sentence("cosmoflow", "file:///d") == \
        "cosmoflow on file:///d: no count passes; 1 per host already fails (AU 80.0 %)"
    assert search_result(none, hosts=3).sentence("cosmoflow", "file:///d") == \
        "cosmoflow on file:///d: no count passes; 1 per host over 3 hosts already fails (AU 80.0 %)"


def test_search_round_names_a_missing_folder(tmp_path, capsys):
    from dldriver.cli import main

    assert main(["mlperf", "search-round", str(tmp_path / "nothing"), "--sweep", "1", "2",
                 "--out", str(tmp_path / "round0.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'nothing'}: not a run folder (no summary.json) nor a folder holding run folders"
    assert not (tmp_path / "round0.json").exists()
