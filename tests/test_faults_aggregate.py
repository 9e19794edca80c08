"""Faults in what `dldriver aggregate` reads and where it writes: damaged summaries and rank files are
skipped with a line naming them (and count as missing in verdicts), damaged baselines and an --out that
is a file or a foreign folder are one line; never a traceback."""
from __future__ import annotations

import csv
import json

import pytest

from faults import in_process, refused, tree
from test_aggregate import make_matrix, summary, write_run

CELL = "unet3d/pytorch/file/r1"


def _verdicts(out):
    with open(out / "verdicts.csv", newline="") as f:
        return {(v["backend"], v["loader"]): v["status"] for v in csv.DictReader(f)}


@pytest.fixture
def matrix_with_baseline(tmp_path):
    results = tmp_path / "m"
    make_matrix(results)
    base = tmp_path / "base.csv"
    r = in_process("aggregate", results, "--save-baseline", base)
    assert r.returncode == 0, r.stderr
    return results, base


@pytest.mark.parametrize("damage, why", [
    ("{}", "no num_accelerators"),
    ('{"num_accelerators": 1, "metric": {"train_au_mean_percentage": "high"}}', "is not a number"),
    ("[1, 2]", "not an object"),
    ("not json {", "unreadable"),
    ('{"num_accelerators": 1, "metric": {"train_au_mean_percentage": NaN, '
     '"train_throughput_mean_samples_per_second": 1, "train_io_mean_MB_per_second": 1}}', "is not a number"),
])
def test_damaged_summaries_are_skipped_named_and_missing_in_verdicts(matrix_with_baseline, damage, why):
    results, base = matrix_with_baseline
    for rep in (1, 2):   # every run of the file cell damaged: the cell is missing, not passing
        (results / f"{CELL}/rep{rep}/summary.json").write_text(damage)
    r = in_process("aggregate", results, "--baseline", base)
    assert "Traceback" not in r.stderr
    for rep in (1, 2):
        assert any(f"{CELL}/rep{rep}/summary.json" in line and why in line for line in r.stderr.splitlines()), \
            r.stderr
    assert _verdicts(results / "report")[("file", "pytorch")] == "missing"
    with open(results / "report/runs.csv", newline="") as f:
        assert not any(row["backend"] == "file" and row["loader"] == "pytorch" for row in csv.DictReader(f))


def test_damaged_rank_output_skips_its_run_naming_the_file(tmp_path):
    results = tmp_path / "m"
    make_matrix(results)
    (results / f"{CELL}/rep1/0_output.json").write_text(json.dumps({"1": {"load": {"block1": ["slow", 0.1]}}}))
    r = in_process("aggregate", results)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert f"{CELL}/rep1/0_output.json: skipped the run" in r.stderr
    with open(results / "report/runs.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


@pytest.mark.parametrize("content, why", [
    (bytes(range(256)) * 4, "unreadable as CSV text"),
    (b"workload,loader,backend,ranks,samples_per_second_mean\nunet3d,pytorch,file,1,fast\n", "is not a number"),
    (b"workload,loader,backend,ranks,samples_per_second_mean\nunet3d,pytorch,file,one,1\n", "ranks"),
    (b"just,a,table\n1,2,3\n", "not a baseline table"),
])
def test_damaged_baseline_is_one_line(tmp_path, content, why):
    results = tmp_path / "m"
    make_matrix(results)
    base = tmp_path / "base.csv"
    base.write_bytes(content)
    refused(in_process("aggregate", results, "--baseline", base), str(base), why)
    assert not (results / "report").exists()      # refused before anything is written


def test_out_naming_a_file_or_a_foreign_folder_is_refused(tmp_path):
    results = tmp_path / "m"
    write_run(results, f"{CELL}/rep1", summary())
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    refused(in_process("aggregate", results, "--out", target), str(target), "existing file")
    assert target.read_text() == "mine"
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "report.html").write_text("my own report")
    (folder / "chapter1.tex").write_text("x")
    before = tree(folder)
    refused(in_process("aggregate", results, "--out", folder), str(folder), "not an earlier dl-driver report")
    assert tree(folder) == before


def test_rerun_writes_into_its_own_report_folder(tmp_path):
    results = tmp_path / "m"
    write_run(results, f"{CELL}/rep1", summary())
    for _ in range(2):
        r = in_process("aggregate", results)
        assert r.returncode == 0, r.stderr
    assert (results / "report/.dldriver-report").is_file() and (results / "report/runs.csv").is_file()


def test_save_baseline_naming_a_folder_is_refused(tmp_path):
    results = tmp_path / "m"
    write_run(results, f"{CELL}/rep1", summary())
    refused(in_process("aggregate", results, "--save-baseline", tmp_path), "--save-baseline", "is a folder")
    assert not (results / "report").exists()
