"""The accelerator search through the Snakemake workflow: sweep, refinement rounds, result, resume, and
the report that opens with its figure (checked in headless Chromium).

The tiny unet3d reads 4 MiB samples against 10 ms of compute per step: one rank keeps up easily, eight
ranks on this 2-core machine cannot (their reads need about four cores). Where between them AU drops
depends on what else the machine runs, so the test checks that the workflow's cells and rounds are what
the search's arithmetic makes of the AU they measured, not one fixed count.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import yaml

from dldriver.cli import main
from dldriver.mlperf.search import count_result, next_counts
from test_workflow import job_counts, snakemake, tiny_config

SWEEP = [1, 8]
# The search's dataset comes from `dldriver datasize`: at 4 MiB, batch 1 and 8 accelerators (the sweep's
# largest) on a 1 GiB host the rules ask for 4000 files (500 steps x 8 x 1); dataset_scale 0.008 makes it 32.
SEARCH = {"workload": "unet3d", "loader": "native", "backend": "file", "sweep": SWEEP, "runs": 1,
          "host_memory_gib": 1, "dataset_scale": 0.008,
          "overrides": ["dataset.record_length_bytes=4194304", "dataset.record_length_bytes_resize=4194304",
                        "reader.batch_size=1", "train.computation_time=0.01"]}


def search_config(tmp_path, **changes):
    config, out = tiny_config(tmp_path, "unused", backends=("file",), repetitions=1)
    cfg = yaml.safe_load(config.read_text())
    cfg["workloads"] = {"unet3d": cfg["workloads"]["unet3d"]}
    cfg["searches"] = {"tiny": SEARCH | changes}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config, out / "search_tiny"


def datasize_says(config: Path, data_folder: str, capsys) -> dict:
    """`dldriver datasize --json` for the search's workload, overrides, largest count, memory and scale."""
    cfg = yaml.safe_load(config.read_text())
    wl, s = cfg["workloads"]["unet3d"], cfg["searches"]["tiny"]
    capsys.readouterr()
    assert main(["datasize", wl["file"], *wl["overrides"], *s["overrides"], f"dataset.data_folder={data_folder}",
                 "--accelerators-per-host",
                 str(max(s["sweep"])), "--host-memory-gib", str(s["host_memory_gib"]),
                 "--scale", str(s["dataset_scale"]), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_search_naming_an_unknown_loader_is_rejected(tmp_path):
    config, _ = search_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["searches"]["tiny"]["loader"] = "pytroch"
    config.write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--configfile", str(config))
    assert r.returncode != 0
    assert "searches.tiny.loader: unknown loader 'pytroch' (known: native)" in r.stdout + r.stderr


def test_a_search_that_sets_the_file_count_itself_is_rejected(tmp_path):
    config, _ = search_config(tmp_path, overrides=SEARCH["overrides"] + ["dataset.num_files_train=32"])
    r = snakemake("-n", "--configfile", str(config))
    assert r.returncode != 0
    assert ("searches.tiny.overrides: 'dataset.num_files_train=32': the search sizes its dataset with "
            "`dldriver datasize`; shrink it with dataset_scale (and host_memory_gib)") in r.stdout + r.stderr


def test_a_search_over_two_hosts_plans_two_node_jobs_under_slurm(tmp_path):
    """hosts: 2 sizes the dataset for 2 hosts x the largest count, and each count N is one Slurm job over
    2 nodes of 2 x N ranks (N tasks per node; 1 per host is 2 tasks over 2 nodes). A dry run submits nothing."""
    config, search = search_config(tmp_path, hosts=2, sweep=[1, 4])
    r = snakemake(str(search / "search.json"), "-n", "-p", "--profile", "profiles/slurm", "--configfile", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    sizing = [line for line in r.stdout.splitlines() if " dldriver datasize " in line]
    assert len(sizing) == 1 and " --hosts 2 --accelerators-per-host 4 " in sizing[0]
    cells = {}
    for job in r.stdout.split("\nrule ")[1:]:
        if job.startswith("mlperf_run:"):
            fields = {}                                         # a job's first lines (a local rule may follow)
            for key, _, value in (line.partition(":") for line in job.splitlines()[1:]):
                fields.setdefault(key.strip(), value.strip())
            count = int(dict(w.strip().split("=") for w in fields["wildcards"].split(","))["accels"])
            cells[count] = dict(item.strip().split("=", 1) for item in fields["resources"].split(","))
            assert f"run-cell.sh --hosts 2 {2 * count} " in job
    assert sorted(cells) == [1, 4]
    assert cells[1]["nodes"] == "2" and cells[1]["tasks"] == "2" and "tasks_per_node" not in cells[1]
    assert cells[4]["nodes"] == "2" and cells[4]["tasks_per_node"] == "4" and "tasks" not in cells[4]
    assert cells[4]["mpi"] == cells[1]["mpi"] == "srun"


def test_a_search_over_two_hosts_is_refused_without_slurm(tmp_path):
    config, search = search_config(tmp_path, hosts=2)
    r = snakemake(str(search / "search.json"), "--cores", "1", "--configfile", str(config))
    assert r.returncode != 0
    refusal = [line for line in (r.stdout + r.stderr).splitlines() if "searches.tiny.hosts" in line]
    assert refusal == ["config: searches.tiny.hosts: 2 hosts need Slurm (--profile slurm); "
                       "the local executor runs on one host"], r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not search.exists()                                  # refused before the first job


def test_search_end_to_end_and_resume(tmp_path, capsys):
    config, search = search_config(tmp_path)
    target = str(search / "verdict.json")           # the flow ends with the rules verdict on the result
    r = snakemake(target, "--cores", "2", "--configfile", str(config), timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert job_counts(r.stdout + r.stderr)["mlperf_generate"] == 1           # one dataset for every count

    # The dataset is the one datasize gives for this configuration: its figures, its files, every cell's config.
    data_folder = tmp_path / "results/tiny/data/search_tiny"
    sized = datasize_says(config, f"file://{data_folder}", capsys)
    assert (sized["num_files_train"], sized["rule"], sized["num_files_generate"]) == (4000, "500 steps", 32)
    assert json.loads((search / "datasize.json").read_text()) == sized
    assert len(list((data_folder / "train").rglob("*.npz"))) == 32
    manifest = json.loads((search / "dataset.json").read_text())
    assert manifest["num_files_train"] == len(manifest["files"]) == 32
    cells = sorted(search.glob("native/file/r*/rep1"))
    for cell in cells:
        ran = json.loads((cell / "provenance.json").read_text())["workload"]["config"]["dataset"]
        assert ran["num_files_train"] == 32 and ran["data_folder"] == f"file://{data_folder}"

    result = json.loads((search / "search.json").read_text())
    rounds = sorted(search.glob("round*.json"), key=lambda p: int(p.stem[len("round"):]))
    cells = sorted(search.glob("native/file/r*/rep1/summary.json"))
    assert len(cells) == len(list(search.glob("native/file/r*/rep1/provenance.json")))
    au = {int(p.parent.parent.name[1:]): json.loads(p.read_text())["metric"]["train_au_mean_percentage"]
          for p in cells}
    # Replaying the arithmetic on the measured AU gives exactly the counts the workflow ran, round by round.
    results, replay = {}, []
    while todo := next_counts(SWEEP, results):
        replay.append(todo)
        results |= {n: count_result(n, [au[n]], 0.90, 1) for n in todo}
    assert sorted(au) == sorted(results)
    assert len(rounds) == len(replay)
    best, fail = result["best_per_host"], result["first_fail_per_host"]
    assert au[1] >= 90 and fail is not None and au[fail] < 90, au
    assert best >= 1 and fail - best == 1 and best in au and fail in au
    assert result["sentence"].startswith(f"unet3d on file://{tmp_path}/results/tiny/data/search_tiny: {best} ")
    assert result["sentence"].endswith("; dataset 32 of the 4000 files the MLPerf rules ask for (0.8 %)")
    assert (result["dataset"]["scale"], result["dataset"]["num_files_generate"]) == (0.008, 32)
    assert len(replay) >= 2, "8 ranks on 2 cores must fail, so the search refines between 1 and 8"

    # The rules verdict is `dldriver mlperf check` on the best count's runs, with the search's edition and
    # memory: INVALID (32 files, 1 run, the shrunk record length and compute), a result that did not fail
    # the workflow.
    verdict = json.loads((search / "verdict.json").read_text())
    runs = [str(search / f"native/file/r{best}/rep1")]
    capsys.readouterr()
    assert main(["mlperf", "check", yaml.safe_load(config.read_text())["workloads"]["unet3d"]["file"],
                 "--runs", *runs, "--edition", "v2.0", "--host-memory-gib", "1", "--json"]) == 3
    assert verdict == json.loads(capsys.readouterr().out) | {
        "workload": "unet3d", "search": str(search / "search.json"), "accelerators_per_host": best,
        "passed": True, "runs": runs}
    failed = {f["rule"]: f["division"] for f in verdict["findings"] if f["division"] != "CLOSED"}
    assert verdict["division"] == "INVALID" and failed == {      # reader.data_loader native is OPEN only
        "trainingClosedSubmissionParameters": "INVALID", "trainingOpenSubmissionParameters": "OPEN",
        "trainingRecalculateDatasetSize": "INVALID", "trainingRunCount": "INVALID"}
    assert (search / "verdict.md").read_text().startswith("# MLPerf Storage v2.0 rules verdict: INVALID\n")
    assert not list(search.glob("*.tmp"))
    # A check that fails (here: the count it names has no runs) fails the job and leaves no verdict file.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "search.json").write_text(json.dumps(result | {"best_per_host": 99}))
    r = subprocess.run(["bash", "scripts/search-verdict.sh", str(broken / "search.json"), str(search / "native/file"),
                        "1", str(broken / "verdict.json"), str(broken / "verdict.md"), "unused.yaml"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and sorted(p.name for p in broken.iterdir()) == ["search.json"], r.stderr

    # A search killed while its last refinement cell ran has neither that cell nor the round that reads it
    # (the last one) nor its end and verdict: a rerun runs exactly those.
    last = replay[-1][0]
    for path in [search / f"native/file/r{last}/rep1/summary.json", rounds[-1], search / "search.json",
                 search / "verdict.json", search / "verdict.md"]:
        path.unlink()
    again = snakemake(target, "--cores", "2", "--configfile", str(config), timeout=900)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    counts = job_counts(again.stdout + again.stderr)
    assert (counts.get("mlperf_run"), counts.get("mlperf_round")) == (1, 1) and "mlperf_generate" not in counts
    assert counts.get("mlperf_verdict") == 1 and (search / "search.json").is_file()
    best = json.loads((search / "search.json").read_text())["best_per_host"]      # the rerun may move it

    # The report opens with the per-workload headline (the search's figure) and keeps the full table.
    matrix = search.parent
    assert main(["aggregate", str(matrix)]) == 0
    page = (matrix / "report" / "report.html").read_text()
    assert page.index("<h2>Per workload</h2>") < page.index("<h2>Every cell (mean over repetitions)</h2>")
    figure = json.loads((search / "search.json").read_text())["sentence"].split(": ", 1)[1]
    assert f'<td class="">unet3d</td><td class="">{figure}</td>' in page
    assert "<th>Accelerators the storage feeds</th>" in page and "<th>Samples/s</th>" in page
    # Beside the figure, the rules verdict in words with its rule ids; the same in rules_verdicts.csv.
    assert (f'<td class="">{figure}</td><td class="bad">INVALID: a setting neither division allows to change '
            "(trainingClosedSubmissionParameters); an OPEN-only setting (trainingOpenSubmissionParameters); "
            "dataset smaller than the rules ask (trainingRecalculateDatasetSize); "
            "not the number of runs the rules ask (trainingRunCount)</td>") in page
    assert "<th>MLPerf rules verdict</th>" in page
    [row] = list(csv.DictReader(open(matrix / "report" / "rules_verdicts.csv")))
    assert (row["search"], row["division"], row["accelerators_per_host"]) == ("tiny", "INVALID", str(best))
    rendered = render(matrix / "report" / "report.html", tmp_path)
    assert rendered["tables"] >= 2 and rendered["images"] >= 1 and rendered["screenshot_bytes"] > 10_000


def render(page: Path, tmp_path: Path) -> dict:
    """Open the page in headless Chromium: the DOM it built (tables, images) and a screenshot."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (make test installs the chromium package)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri()],
                   capture_output=True, timeout=120)
    return {"tables": dom.count("<table"), "images": dom.count('<img alt="'),
            "screenshot_bytes": shot.stat().st_size if shot.exists() else 0}
