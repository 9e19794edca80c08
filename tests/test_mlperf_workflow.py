"""The accelerator search through the Snakemake workflow: sweep, refinement rounds, result, resume.

The tiny unet3d reads 4 MiB samples against 10 ms of compute per step: one rank keeps up easily, eight
ranks on this 2-core machine cannot (their reads need about four cores). Where between them AU drops
depends on what else the machine runs, so the test checks that the workflow's cells and rounds are what
the search's arithmetic makes of the AU they measured, not one fixed count.
"""
from __future__ import annotations

import json

import yaml

from dldriver.mlperf.search import count_result, next_counts
from test_workflow import job_counts, snakemake, tiny_config

SWEEP = [1, 8]


def search_config(tmp_path):
    config, out = tiny_config(tmp_path, "unused", backends=("file",), repetitions=1)
    cfg = yaml.safe_load(config.read_text())
    cfg["workloads"] = {"unet3d": cfg["workloads"]["unet3d"]}
    cfg["searches"] = {"tiny": {
        "workload": "unet3d", "loader": "native", "backend": "file", "sweep": SWEEP, "runs": 1,
        "overrides": ["dataset.num_files_train=32", "dataset.record_length_bytes=4194304",
                      "dataset.record_length_bytes_resize=4194304", "reader.batch_size=1",
                      "train.computation_time=0.01"]}}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return config, out / "search_tiny"


def test_search_end_to_end_and_resume(tmp_path):
    config, search = search_config(tmp_path)
    target = str(search / "search.json")
    r = snakemake(target, "--cores", "2", "--configfile", str(config), timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert job_counts(r.stdout + r.stderr)["mlperf_generate"] == 1           # one dataset for every count

    result = json.loads((search / "search.json").read_text())
    rounds = sorted(search.glob("round*.json"), key=lambda p: int(p.stem[len("round"):]))
    cells = sorted(search.glob("native/file/r*/rep1/summary.json"))
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
    assert len(replay) >= 2, "8 ranks on 2 cores must fail, so the search refines between 1 and 8"

    # A search killed while its last refinement cell ran has neither that cell nor the round that reads it
    # (the last one) nor its end: a rerun runs exactly those.
    last = replay[-1][0]
    for path in [search / f"native/file/r{last}/rep1/summary.json", rounds[-1], search / "search.json"]:
        path.unlink()
    again = snakemake(target, "--cores", "2", "--configfile", str(config), timeout=900)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    counts = job_counts(again.stdout + again.stderr)
    assert (counts.get("mlperf_run"), counts.get("mlperf_round")) == (1, 1) and "mlperf_generate" not in counts
    assert (search / "search.json").is_file()
