"""What the YAML reader and the override grammar refuse: duplicate keys, oversized files, Hydra's prefixes,
deletions of keys that do not exist, both spellings of one key across file and override."""
import json
from pathlib import Path

import pytest

from dldriver.cli import main
from dldriver.config import load_workload
from dldriver.config.yamlread import MAX_CONFIG_BYTES
from dldriver.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,expected", [
    ("dataset:\n  num_files_train: 4\n  format: npz\n  num_files_train: 8\n",
     "dataset.num_files_train: given twice in one mapping (lines 2 and 4)"),
    ("dataset: {format: npz}\nreader: {batch_size: 2}\ndataset:\n  num_files_train: 8\n",
     "dataset: given twice in one mapping (lines 1 and 3)"),
    ("workload:\n  reader:\n    odirect: true\n    transfer_size: 4\n    odirect: false\n",
     "workload.reader.odirect: given twice in one mapping (lines 3 and 5)"),
])
def test_duplicate_keys_name_path_and_both_lines(tmp_path, capsys, text, expected):
    assert main(["validate", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_yaml_anchors_and_merge_keys_still_load(tmp_path):
    # A merge key (`<<`) that a later key overrides is YAML's own way of replacing, not a duplicate.
    w = load_workload(write(tmp_path, "dataset:\n  hdf5: {chunk_dims: &d [1, 2], max_shape: *d}\n"
                                      "reader: {<<: {batch_size: 3, read_threads: 2}, batch_size: 4}\n"))
    assert (w.dataset.hdf5.max_shape, w.reader.batch_size, w.reader.read_threads) == ([1, 2], 4, 2)


def test_oversized_file_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "over the 1024 KiB a workload config may have" in err and err.count("\n") == 1


@pytest.mark.parametrize("override,expected", [
    ("~reader.bacth_size", "reader.bacth_size: unknown key; did you mean reader.batch_size?"),
    ("~workload.nosuchsection.key", "nosuchsection.key: unknown key"),
])
def test_deletions_are_checked_like_other_overrides(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.").replace("?", r"\?")):
        load_workload(write(tmp_path, "reader: {batch_size: 2}\n"), [override])


def test_deleting_a_key_returns_it_to_dlios_default(tmp_path):
    w = load_workload(write(tmp_path, "reader: {batch_size: 2}\n"), ["~workload.reader.batch_size"])
    assert w.reader.batch_size == 1


def test_hydra_prefixes_keep_their_meaning(tmp_path):
    path = write(tmp_path, "reader: {batch_size: 2}\n")
    with pytest.raises(ConfigError, match=r"reader.batch_size: is already in the file: `\+` adds"):
        load_workload(path, ["+workload.reader.batch_size=3"])
    with pytest.raises(ConfigError, match=r"train.epochs: is not in the file: a bare workload.KEY=VALUE"):
        load_workload(path, ["workload.train.epochs=3"])
    w = load_workload(path, ["workload.reader.batch_size=3", "+workload.train.epochs=4", "train.seed=9",
                             "++workload.reader.read_threads=2"])
    assert (w.reader.batch_size, w.train.epochs, w.train.seed, w.reader.read_threads) == (3, 4, 9, 2)


def test_both_spellings_across_file_and_override(tmp_path):
    path = write(tmp_path, "dataset: {record_length_bytes: 100}\n")
    with pytest.raises(ConfigError, match="dataset.record_length: conflicts with dataset.record_length_bytes in "
                                          "the file"):
        load_workload(path, ["++workload.dataset.record_length=5"])
    old = write(tmp_path, "dataset: {record_length: 100}\n")
    with pytest.raises(ConfigError, match="dataset.record_length_bytes: conflicts with dataset.record_length in"):
        load_workload(old, ["dataset.record_length_bytes=5"])
    assert load_workload(old, ["dataset.record_length=5"]).dataset.record_length_bytes == 5


@pytest.mark.parametrize("command", ["validate", "run"])
def test_zero_ranks_is_refused_alike(tmp_path, capsys, command):
    assert main([command, str(write(tmp_path, "dataset: {format: npz}\n")), "--ranks", "0"]) == 2
    assert capsys.readouterr().err == "error: --ranks must be >= 1 (got 0)\n"


@pytest.mark.parametrize("generation,prefetch", [("head", 2), ("2.0.0", 2), ("1.0", 0)])
def test_dlio_generation_defaults(capsys, generation, prefetch):
    # MLPerf Storage v0.5's unet3d.yaml ran on DLIO 1.0, whose reader.prefetch_size default was 0.
    path = Path(__file__).parent / "data" / "upstream" / "mlperf-v0.5" / "unet3d.yaml"
    assert main(["validate", "--json", "--dlio-defaults", generation, str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["reader"]["prefetch_size"] == prefetch
    # A key the file or an override gives is never replaced by a generation's default.
    assert load_workload(path, ["reader.prefetch_size=5"], dlio_defaults=generation).reader.prefetch_size == 5


def test_unknown_generation_is_one_line(capsys, tmp_path):
    assert main(["validate", "--dlio-defaults", "0.9", str(write(tmp_path, "dataset: {format: npz}\n"))]) == 2
    assert capsys.readouterr().err == "error: unknown DLIO defaults '0.9'; known: head, 2.0.0, 1.0\n"
