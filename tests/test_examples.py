"""The examples under examples/ train their tiny models on generated data and write measured run
folders, from a local folder and from S3."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, data: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), data, str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'examples'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "AU" in done.stdout
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("script", ["torch_cnn.py", "tensorflow_keras.py", "jax_dense.py"])
def test_example_on_a_local_folder(tmp_path, script):
    summary = _run(script, str(tmp_path / "data"), tmp_path / "out")
    assert summary["dldriver"]["measured"] and summary["dldriver"]["steps_per_epoch"] == 8
    assert len(summary["metric"]["train_au_percentage"]) == 2


def test_torch_example_on_s3(tmp_path, s3_uri):
    summary = _run("torch_cnn.py", f"{s3_uri}/data", tmp_path / "out")
    assert summary["dldriver"]["dataset_uri"].startswith("s3://") and summary["dldriver"]["coverage_ok"]
