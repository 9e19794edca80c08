"""The commands the workflow calls instead of importing the package: version, manifest, run --cell."""
import json

from dldriver.aggregate.collect import collect
from dldriver.cli import main
from dldriver.dataset.manifest import GENERATOR_VERSION

from test_run_helpers import make_dataset, workload_doc, write_config


def test_version_json(capsys):
    assert main(["version", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"version", "generator_version", "git_commit", "dlio_defaults"}
    assert info["dlio_defaults"] == ["head", "2.0.0", "1.0"]
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
