"""Helpers (no tests) for the format, layout and generate tests: a tiny workload in a temporary folder."""
from __future__ import annotations

from dldriver.config import load_workload
from dldriver.storage import open_storage

BASE = """\
model: {name: tiny}
framework: native
workflow: {generate_data: true, train: false}
dataset: {data_folder: DATA, format: npz, num_files_train: 2, num_files_eval: 1, num_samples_per_file: 1,
          record_length_bytes: 64}
reader: {data_loader: native, batch_size: 1}
"""


def workload(tmp_path, *overrides):
    """A workload whose dataset lies in tmp_path/data, with short-form overrides applied."""
    path = tmp_path / "workload.yaml"
    path.write_text(BASE.replace("DATA", str(tmp_path / "data")))
    return load_workload(path, list(overrides))


def data_storage(tmp_path):
    return open_storage(f"file://{tmp_path / 'data'}")
