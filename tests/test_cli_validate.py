"""`dldriver validate`: the table, the JSON, --ranks."""
import json
from pathlib import Path

from dldriver.cli import main

WORKLOADS = Path(__file__).parents[1] / "configs" / "workloads"


def test_json_output(capsys):
    assert main(["validate", str(WORKLOADS / "llama_70b.yaml"), "--ranks", "32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"config", "plan", "config_hash", "source", "storage", "profiles"}
    assert data["source"].endswith("llama_70b.yaml") and len(data["config_hash"]) == 16
    assert data["plan"]["ranks"] == 32 and data["plan"]["checkpoint_bytes"] == 978372378624
    assert data["config"]["model"]["transformer"]["hidden_size"] == 8192
    assert data["storage"]["dataset_uri"].startswith("file:///")


def test_table_output(capsys):
    assert main(["validate", str(WORKLOADS / "unet3d_a100.yaml"), "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "plan for 1 rank(s)" in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) >= 2}
    assert (lines["steps_per_epoch"], lines["train.epochs"], lines["dataset.format"]) == ("24", "2", "npz")


def test_overrides_change_the_hash(capsys):
    main(["validate", str(WORKLOADS / "default.yaml"), "--json"])
    first = json.loads(capsys.readouterr().out)["config_hash"]
    main(["validate", str(WORKLOADS / "default.yaml"), "reader.batch_size=8", "--json"])
    assert json.loads(capsys.readouterr().out)["config_hash"] != first
