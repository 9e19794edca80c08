"""The commands the workflow calls instead of importing the package: version, manifest, run --cell."""
import json

import numpy

from dldriver.aggregate.collect import collect
from dldriver.cli import main
from dldriver.dataset.manifest import GENERATOR_VERSION
from dldriver.version import package_version

from test_run_helpers import make_dataset, workload_doc, write_config


def test_version_json(capsys):
    assert main(["version", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"version", "generator_version", "git_commit", "dlio_defaults", "mlperf_editions"}
    assert info["dlio_defaults"] == ["head", "2.0.0", "1.0"]
    assert info["mlperf_editions"] == {"v2.0": {"warmup_runs": 0, "measured_runs": 5},
                                       "v3.0": {"warmup_runs": 1, "measured_runs": 5}}
    assert info["generator_version"] == GENERATOR_VERSION
    assert info["git_commit"] is None or len(info["git_commit"]) == 40


def test_manifest_prints_the_datasets_manifest_or_says_there_is_none(tmp_path, capsys):
    doc = workload_doc(tmp_path / "d", files=2)
    make_dataset(tmp_path, doc)
    config = str(write_config(tmp_path / "w.yaml", doc))
    assert main(["manifest", config]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert main(["manifest", config, "dataset.data_folder=" + str(tmp_path / "none")]) == 1
    assert "no manifest; run `dldriver generate`" in capsys.readouterr().err


def test_a_run_records_its_cell_and_aggregate_places_it_by_that(tmp_path, capsys):
    doc = workload_doc(tmp_path / "d", files=2)
    make_dataset(tmp_path, doc)
    config = str(write_config(tmp_path / "w.yaml", doc))
    folder = tmp_path / "matrix" / "anywhere"  # not the matrix's path layout: the cell says where it belongs
    assert main(["run", config, "-q", "-o", str(folder),
                 "--cell", "workload=tiny,loader=native,backend=file,ranks=1,rep=3"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["dldriver"]["cell"] == {"workload": "tiny", "loader": "native", "backend": "file",
                                           "ranks": "1", "rep": "3"}
    rows = collect(tmp_path / "matrix").rows
    assert [(r["workload"], r["loader"], r["backend"], r["rep"]) for r in rows] == [("tiny", "native", "file", 3)]
    assert main(["run", config, "-q", "-o", str(folder), "--cell", "workload"]) == 2
    assert "--cell: 'workload' is not KEY=VALUE" in capsys.readouterr().err
    # One function gives every version a run records: the summary's and provenance.json's agree.
    provenance = json.loads((folder / "provenance.json").read_text())
    assert summary["dldriver"]["versions"]["numpy"] == provenance["numpy"] == package_version("numpy") == numpy.__version__


def test_package_version_of_a_module_a_distribution_or_nothing():
    import yaml

    assert package_version("yaml") == yaml.__version__                  # a module, by its own __version__
    assert package_version("azure-storage-blob") != "unknown"          # a distribution, from its metadata
    assert package_version("no-such-package-xyz") == "unknown" and package_version(None) == "none"
