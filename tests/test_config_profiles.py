"""Framework profiles in the workload YAML: validate shows each resolved key and where it came from, and
`dldriver run` reads with the loader's profile."""
from __future__ import annotations

import json

from dldriver.cli import main
from dldriver.engine.run import run_workload

from test_run_helpers import make_dataset, workload_doc, write_config


def test_validate_shows_the_resolved_profile_and_its_origins(tmp_path, capsys):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch",
                       framework_profiles={"pytorch": {"batch_size": 8}, "jax": {"prefetch_buffer_size": 4}})
    path = write_config(tmp_path / "w.yaml", doc)
    assert main(["validate", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    torch_profile = data["profiles"]["pytorch"]
    # the file and the key as written there (the nested form), not the top-level spelling it folds into
    assert torch_profile["batch_size"] == {"value": 8, "from": f"{path}: framework_profiles.pytorch.batch_size"}
    assert torch_profile["num_workers"] == {"value": 1, "from": "reader.read_threads"}
    assert data["profiles"]["jax"]["prefetch_buffer_size"]["value"] == 4
    assert data["profiles"]["tensorflow"]["batch_size"] == {"value": 2, "from": "reader.batch_size"}
    assert data["plan"]["steps_per_epoch"] == 1  # 8 samples, batch 8 from the pytorch profile
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pytorch profile (value, from)" in out
    assert f"4  ({path}: framework_profiles.jax.prefetch_buffer_size)" in out
    # an override names itself, as written; the top-level form names its own key
    assert main(["validate", str(path), "framework_profiles.pytorch.batch_size=4", "--json"]) == 0
    origin = json.loads(capsys.readouterr().out)["profiles"]["pytorch"]["batch_size"]
    assert origin == {"value": 4, "from": "override framework_profiles.pytorch.batch_size"}
    top = write_config(tmp_path / "top.yaml", workload_doc(tmp_path / "d", "npz", jax_config={"seed": 5}))
    assert main(["validate", str(top), "--json"]) == 0
    origin = json.loads(capsys.readouterr().out)["profiles"]["jax"]["seed"]
    assert origin == {"value": 5, "from": f"{top}: jax_config.seed"}


def test_validate_names_a_bad_profile_key(tmp_path, capsys):
    doc = workload_doc(tmp_path / "d", "npz", tensorflow_config={"prefetch_buffer_size": "auto"})
    assert main(["validate", str(write_config(tmp_path / "w.yaml", doc))]) == 2
    assert "tensorflow_config.prefetch_buffer_size: expected an integer" in capsys.readouterr().err


def test_run_reads_with_the_loaders_profile(tmp_path):
    doc = workload_doc(tmp_path / "d", "npz", loader="pytorch", files=4, samples=2,
                       pytorch_config={"batch_size": 4, "num_workers": 0})
    w = make_dataset(tmp_path, doc)
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    assert summary["dldriver"]["steps_per_epoch"] == 2  # 8 samples / batch 4, not reader.batch_size 2
    assert summary["dldriver"]["config"]["reader"]["read_threads"] == 0
