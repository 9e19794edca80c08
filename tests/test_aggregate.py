"""dldriver.aggregate: statistics and verdicts on hand-made rows, and the command on a hand-made
results folder (summary.json files as the engine writes them)."""
import csv
import json
import math

import pytest

from dldriver.aggregate import aggregate_command
from dldriver.aggregate.collect import collect, run_row
from dldriver.aggregate.stats import au_verdict, cell_table, describe
from dldriver.aggregate.verdict import compare, parse_tolerance, regressed
from dldriver.cli import main
from dldriver.errors import DlDriverError


# ---- statistics ------------------------------------------------------------------------------

def test_describe_hand_computed():
    d = describe([10.0, 12.0, 14.0])
    assert d["n"] == 3 and d["mean"] == 12.0 and d["min"] == 10.0 and d["max"] == 14.0
    assert d["stdev"] == pytest.approx(2.0)            # sample stdev: sqrt((4+0+4)/2)
    assert d["cv"] == pytest.approx(2.0 / 12.0)


def test_describe_single_value_and_gaps():
    assert describe([5.0]) == {"n": 1, "mean": 5.0, "stdev": 0.0, "min": 5.0, "max": 5.0, "cv": 0.0}
    assert describe([None, float("nan"), 4.0])["n"] == 1
    assert describe([None]) == {"n": 0, "mean": None, "stdev": None, "min": None, "max": None, "cv": None}
    assert describe([0.0, 0.0])["cv"] is None          # no CV of a zero mean


def row(workload="unet3d", loader="pytorch", backend="file", ranks=1, rep=1, sps=100.0, au=95.0,
        threshold=90.0, mode="train", **extra):
    base = {"workload": workload, "loader": loader, "backend": backend, "ranks": ranks, "rep": rep,
            "mode": mode, "samples_per_second": sps, "au_percentage": au,
            "au_threshold_percentage": threshold, "config_hash": "abc"}
    return base | extra


def test_cell_table_groups_repetitions():
    rows = [row(rep=1, sps=100.0, au=92.0), row(rep=2, sps=110.0, au=86.0),
            row(backend="s3", rep=1, sps=50.0)]
    cells = {c["backend"]: c for c in cell_table(rows)}
    assert set(cells) == {"file", "s3"}
    f = cells["file"]
    assert f["runs"] == 2 and f["samples_per_second_mean"] == 105.0
    assert f["samples_per_second_min"] == 100.0 and f["samples_per_second_max"] == 110.0
    assert f["samples_per_second_stdev"] == pytest.approx(math.sqrt(50))
    assert f["au_percentage_mean"] == 89.0 and f["au_meet_expectation"] == "fail"   # 89 < 90
    assert cells["s3"]["runs"] == 1 and cells["s3"]["au_meet_expectation"] == "success"


def test_au_verdict_boundary():
    assert au_verdict(90.0, 90.0) == "success"
    assert au_verdict(89.999, 90.0) == "fail"
    assert au_verdict(None, 90.0) is None and au_verdict(95.0, None) is None


# ---- verdicts --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("5%", 0.05), ("0.05", 0.05), (0.1, 0.1), ("0%", 0.0), (" 12.5% ", 0.125)])
def test_parse_tolerance(text, value):
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-1%", "100%", "1.5", ""])
def test_parse_tolerance_rejects(text):
    with pytest.raises(DlDriverError, match="tolerance"):
        parse_tolerance(text)


def _baseline(cells):
    """A baseline as read back from CSV: every value a string."""
    return [{k: ("" if v is None else str(v)) for k, v in c.items()} for c in cells]


def test_verdicts_pass_fail_new_missing():
    before = cell_table([row(backend="file", sps=100.0), row(backend="s3", sps=100.0),
                         row(backend="azure", sps=100.0), row(workload="llama", loader="checkpoint",
                                                              mode="checkpoint", sps=None, au=None,
                                                              save_gb_per_second=2.0, load_gb_per_second=4.0)])
    now = cell_table([row(backend="file", sps=96.0),          # -4 %: within 5 %
                      row(backend="s3", sps=94.0),            # -6 %: regression
                      row(backend="direct", sps=80.0),        # not in the baseline
                      row(workload="llama", loader="checkpoint", mode="checkpoint", sps=None, au=None,
                          save_gb_per_second=2.1, load_gb_per_second=3.0)])   # load -25 %
    verdicts = {(v["workload"], v["backend"]): v for v in compare(now, _baseline(before), 0.05)}
    assert verdicts[("unet3d", "file")]["status"] == "pass"
    assert verdicts[("unet3d", "file")]["change"] == pytest.approx(-0.04)
    assert verdicts[("unet3d", "s3")]["status"] == "fail"
    assert "samples_per_second -6.0%" in verdicts[("unet3d", "s3")]["detail"]
    assert verdicts[("unet3d", "direct")]["status"] == "new"
    assert verdicts[("unet3d", "azure")]["status"] == "missing"
    ckpt = verdicts[("llama", "file")]
    assert ckpt["status"] == "fail" and ckpt["metric"] == "load_gb_per_second"
    assert regressed(list(verdicts.values()))


def test_improvement_and_au_verdict_beside_it():
    before = cell_table([row(sps=100.0)])
    now = cell_table([row(sps=150.0, au=50.0)])
    [v] = compare(now, _baseline(before), 0.05)
    assert v["status"] == "pass" and v["change"] == pytest.approx(0.5)
    assert v["au_meet_expectation"] == "fail"      # MLPerf's AU rule is reported, not the release gate
    assert v["config_changed"] is False
    assert not regressed([v])


def test_config_change_is_flagged():
    before = cell_table([row(sps=100.0)])
    now = cell_table([row(sps=100.0, config_hash="other")])
    [v] = compare(now, _baseline(before), 0.05)
    assert v["config_changed"] is True


# ---- collecting runs -------------------------------------------------------------------------

def summary(sps=100.0, au=95.0, load=(0.01, 0.02, 0.03), au_threshold=0.9):
    return {
        "num_accelerators": 1, "hostname": "h", "start": "2026-01-01T00:00:00.000000",
        "metric": {"train_au_mean_percentage": au, "train_au_meet_expectation": "success" if au >= 90 else "fail",
                   "train_throughput_mean_samples_per_second": sps, "train_io_mean_MB_per_second": sps / 4},
        "dldriver": {"version": "0.1.0", "true_MB_per_second": sps / 3,
                     "versions": {"numpy": "2.4", "torch": "2.13.0"}, "config_hash": "c0ffee",
                     "config": {"metric": {"au": au_threshold}}},
    }


def write_run(results, rel, data, load=(0.01, 0.02, 0.03), slurm=None):
    folder = results / rel
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(data))
    (folder / "0_output.json").write_text(json.dumps(
        {"1": {"load": {"block1": list(load), "eval": [9.0]}}, "hostname": "h"}))
    if slurm:
        (folder / "slurm.json").write_text(json.dumps(slurm))
    return folder


def test_run_row_reads_dlio_and_dldriver_keys():
    r = run_row(summary(), {"workload": "w", "loader": "pytorch", "backend": "s3", "ranks": "2", "rep": "3"},
                {"job_id": "42", "ntasks": 2}, None)
    assert (r["ranks"], r["rep"], r["mode"]) == (2, 3, "train")
    assert r["samples_per_second"] == 100.0 and r["mb_per_second"] == 25.0
    assert r["true_mb_per_second"] == pytest.approx(33.333, rel=1e-3)
    assert r["au_threshold_percentage"] == 90.0
    assert r["versions"] == "numpy=2.4; torch=2.13.0" and r["config_hash"] == "c0ffee"
    assert r["slurm_job_id"] == "42" and r["slurm_ntasks"] == 2


def test_collect_skips_partial_runs_loudly(tmp_path):
    write_run(tmp_path, "w/pytorch/file/r1/rep1", summary())
    write_run(tmp_path, "w/pytorch/file/r1/rep2.partial-999", summary())
    write_run(tmp_path, "w/pytorch/file/r1/rep3.old-12", summary())
    write_run(tmp_path, "stray/summary-folder", summary())
    (tmp_path / "w/pytorch/file/r1/rep4").mkdir()            # a killed job's empty folder: no run
    found = collect(tmp_path)
    assert [r["rep"] for r in found.rows] == [1]
    assert len(found.notes) == 3
    assert any("rep2.partial-999" in n and "incomplete" in n for n in found.notes)
    assert any("stray/summary-folder" in n for n in found.notes)
    assert found.load_seconds["w/pytorch/file/r1/rep1"] == [0.01, 0.02, 0.03]   # eval excluded


# ---- the command -----------------------------------------------------------------------------

def make_matrix(results, scale=1.0):
    for backend, sps in (("file", 200.0), ("s3", 100.0)):
        for rep, jitter in ((1, 0.98), (2, 1.02)):
            write_run(results, f"unet3d/pytorch/{backend}/r1/rep{rep}", summary(sps * jitter * scale),
                      slurm={"job_id": f"{backend}{rep}", "ntasks": 1})
    ckpt = {"num_accelerators": 1, "metric": {"save_checkpoint_io_mean_GB_per_second": 1.5, "load_checkpoint_io_mean_GB_per_second": 3.0,
                       "checkpoint_size_GB": 0.004},
            "dldriver": {"mode": "checkpoint_only"}}
    write_run(results, "llama7b/checkpoint/file/r1/rep1", ckpt, load=())


def test_command_writes_tables_plots_and_report(tmp_path, capsys):
    results = tmp_path / "default"
    make_matrix(results)
    assert aggregate_command(results, None, None, "5%", str(tmp_path / "base.csv")) == 0
    out = results / "report"
    for name in ("runs.csv", "runs.parquet", "cells.csv", "cells.md", "report.html",
                 "plots/throughput.png", "plots/au.png", "plots/latency.png", "plots/checkpoint.png"):
        assert (out / name).is_file(), name
    runs = list(csv.DictReader(open(out / "runs.csv")))
    assert len(runs) == 5 and {r["slurm_job_id"] for r in runs} >= {"file1", "s32"}
    cells = list(csv.DictReader(open(out / "cells.csv")))
    assert len(cells) == 3
    s3 = next(c for c in cells if c["backend"] == "s3" and c["loader"] == "pytorch")
    assert float(s3["samples_per_second_mean"]) == pytest.approx(100.0)
    assert float(s3["samples_per_second_cv"]) == pytest.approx(0.02 * math.sqrt(2), rel=1e-6)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img" in html
    assert (tmp_path / "base.csv").read_text() == (out / "cells.csv").read_text()
    assert "report.html" in capsys.readouterr().out

    import pandas as pd
    assert len(pd.read_parquet(out / "runs.parquet")) == 5


def test_command_fails_on_one_regressed_cell(tmp_path, capsys):
    base = tmp_path / "base.csv"
    make_matrix(tmp_path / "before")
    assert aggregate_command(tmp_path / "before", None, None, "5%", str(base)) == 0
    make_matrix(tmp_path / "after")
    # One cell (unet3d/pytorch/s3) made to regress by 20 %.
    for rep in (1, 2):
        path = tmp_path / f"after/unet3d/pytorch/s3/r1/rep{rep}/summary.json"
        data = json.loads(path.read_text())
        data["metric"]["train_throughput_mean_samples_per_second"] *= 0.8
        path.write_text(json.dumps(data))
    assert aggregate_command(tmp_path / "after", None, str(base), "5%", None) == 1
    verdicts = list(csv.DictReader(open(tmp_path / "after/report/verdicts.csv")))
    status = {(v["workload"], v["backend"]): v["status"] for v in verdicts}
    assert status == {("unet3d", "file"): "pass", ("unet3d", "s3"): "fail", ("llama7b", "file"): "pass"}
    assert "REGRESSION unet3d/pytorch/s3/r1" in capsys.readouterr().err
    assert "fail" in (tmp_path / "after/report/verdicts.md").read_text()
    # A generous tolerance lets it pass; the CLI returns the same codes.
    assert main(["aggregate", str(tmp_path / "after"), "--baseline", str(base), "--tolerance", "25%"]) == 0
    assert main(["aggregate", str(tmp_path / "after"), "--baseline", str(base)]) == 1


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main(["aggregate", str(tmp_path / "nope")]) == 1
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["aggregate", str(tmp_path / "empty")]) == 1
    assert "no complete run" in capsys.readouterr().err
    make_matrix(tmp_path / "m")
    assert main(["aggregate", str(tmp_path / "m"), "--baseline", str(tmp_path / "missing.csv")]) == 1
    assert "no such baseline" in capsys.readouterr().err


# ---- the MLPerf rules verdict in the headline ------------------------------------------------

def write_search(results, best, judged):
    """A finished search (search.json) and its rules verdict (verdict.json, of the runs of `judged`)."""
    folder = results / "search_tiny"
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({
        "workload": "unet3d", "best_per_host": best, "first_fail_per_host": 8,
        "results": {"1": {"passed": True}, "8": {"passed": False}},
        "sentence": "unet3d on file:///d: 1 accelerator per host (AU 99.0 % over 1 run); 8 fail (40.0 %)"}))
    finding = {"source": "s", "sentence": "x"}
    (folder / "verdict.json").write_text(json.dumps({
        "edition": "v2.0", "division": "INVALID", "accelerators_per_host": judged, "runs": ["a", "b"],
        "findings": [finding | {"division": "CLOSED", "rule": "trainingClosedSubmissionParameters"},
                     finding | {"division": "INVALID", "rule": "trainingRecalculateDatasetSize"},
                     finding | {"division": "INVALID", "rule": "trainingRunCount"},
                     finding | {"division": "INVALID", "rule": "trainingRunCount"}]}))


def test_headline_row_carries_the_rules_verdict_of_the_search(tmp_path):
    from dldriver.aggregate import headline

    write_search(tmp_path, best=1, judged=1)
    cells = cell_table([run_row(summary(), {"workload": "unet3d", "loader": "pytorch", "backend": "file",
                                            "ranks": "1", "rep": "1"}, {}, None)])
    [row] = headline.headline_rows(cells, None, headline.searches(tmp_path))
    assert row["accelerators"] == "1 accelerator per host (AU 99.0 % over 1 run); 8 fail (40.0 %)"
    assert row["rules_verdict"] == ("INVALID: dataset smaller than the rules ask (trainingRecalculateDatasetSize); "
                                    "not the number of runs the rules ask (trainingRunCount)")
    [line] = headline.rules_verdict_rows(headline.searches(tmp_path))
    assert line == {"workload": "unet3d", "search": "tiny", "accelerators_per_host": 1, "edition": "v2.0",
                    "division": "INVALID", "failed_rules": "trainingRecalculateDatasetSize trainingRunCount",
                    "in_words": row["rules_verdict"], "runs": 2}


def test_a_verdict_of_another_count_is_not_shown(tmp_path):
    from dldriver.aggregate import headline

    write_search(tmp_path, best=1, judged=2)          # left from an earlier result of the search
    [row] = headline.search_only_rows([], headline.searches(tmp_path))
    assert row["rules_verdict"] == "not judged"


def test_command_writes_rules_verdicts_csv_and_shows_it(tmp_path):
    results = tmp_path / "default"
    make_matrix(results)
    write_search(results, best=1, judged=1)
    assert aggregate_command(results) == 0
    [line] = list(csv.DictReader(open(results / "report/rules_verdicts.csv")))
    assert (line["division"], line["failed_rules"]) == ("INVALID", "trainingRecalculateDatasetSize trainingRunCount")
    page = (results / "report/report.html").read_text()
    assert "<th>MLPerf rules verdict</th>" in page
    assert '<td class="bad">INVALID: dataset smaller than the rules ask (trainingRecalculateDatasetSize); ' in page
