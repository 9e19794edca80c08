"""The dataset check at the start of `dldriver run`: cheap (one listing, no stat per file), subset-aware."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

import dldriver.dataset.opening as dataset_module
from dldriver.config.uri import locations
from dldriver.dataset.opening import open_dataset
from dldriver.engine.run import run_workload
from dldriver.errors import DatasetError

from test_run_helpers import make_dataset, workload, workload_doc


def _opened(w, need_eval: bool):
    where = locations(w)
    return open_dataset(w, where.dataset, where.options, need_eval)


class CountingStorage:
    """A storage that records each call by method name and key (or prefix), forwarding everything.

    Other methods run with this wrapper as `self`, so the calls they make in turn are recorded too.
    """

    def __init__(self, inner, calls: Counter):
        self._inner, self.calls = inner, calls

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name not in ("list", "stat", "exists", "get", "get_range"):
            method = getattr(type(self._inner), name, None)
            return method.__get__(self) if callable(method) else attr

        def counted(key="", *args, **kwargs):
            self.calls[(name, key)] += 1
            return attr(key, *args, **kwargs)
        return counted


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Every storage call open_dataset makes."""
    counter: Counter = Counter()
    opener = dataset_module._open
    monkeypatch.setattr(dataset_module, "_open", lambda uri, options: CountingStorage(opener(uri, options), counter))
    return counter


def test_subset_run_reads_the_first_files_only(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", files=12, samples=2))
    for i in range(4, 12):  # a run on 4 files never needs the others
        (tmp_path / "d" / "train" / f"img_{i:02d}_of_12.npz").unlink()
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=4, samples=2))
    dataset = _opened(w, need_eval=False)
    assert [f.key for f in dataset.train_files] == [f"train/img_{i:02d}_of_12.npz" for i in range(4)]
    assert any("first 4 of 12" in warning for warning in dataset.warnings)
    summary = run_workload(w, output=tmp_path / "out", quiet=True)
    assert summary["dldriver"]["coverage_ok"]
    assert summary["dldriver"]["epochs"][0]["samples_read"] == 4 * 2


def test_subset_of_varying_sizes_keeps_the_generated_shapes(tmp_path):
    doc = workload_doc(tmp_path / "d", files=6, samples=1,
                       dataset={"num_files_eval": 3, "record_length_bytes_stdev": 64})
    manifest_shapes = {e["key"]: tuple(e["shape"]) for e in _manifest(make_dataset(tmp_path, doc))}
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=2, samples=1,
                                        dataset={"num_files_eval": 1, "record_length_bytes_stdev": 64}))
    dataset = _opened(w, need_eval=True)
    assert [f.key for f in dataset.eval_files] == ["valid/img_0_of_3.npz"]
    for spec in dataset.train_files + dataset.eval_files:
        assert spec.shape == manifest_shapes[spec.key]


def _manifest(w) -> list[dict]:
    """The manifest's data file entries."""
    path = Path(w.dataset.data_folder) / "manifest.json"
    return [e for e in json.loads(path.read_text())["files"] if "shape" in e]


def test_too_few_files_names_the_counts_and_says_generate(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=6))
    message = f"file://{tmp_path}/d/train: .*holds 4 files, dataset.num_files_train asks for 6.*dldriver generate"
    with pytest.raises(DatasetError, match=message):
        _opened(w, need_eval=False)


def test_other_record_length_names_the_key_and_both_values(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=4, dataset={"record_length_bytes": 1024}))
    with pytest.raises(DatasetError) as err:
        _opened(w, need_eval=False)
    assert re.search(r"dataset\.record_length_bytes: 256(\.0)? in the manifest, 1024(\.0)? in the config",
                     str(err.value))
    assert "num_files" not in str(err.value) and "dldriver generate" in str(err.value)


def test_other_format_and_samples_are_both_named(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", "npz", files=4, samples=2))
    w = workload(tmp_path, workload_doc(tmp_path / "d", "npy", files=4, samples=3))
    with pytest.raises(DatasetError, match="dataset.format: 'npz' in the manifest, 'npy' in the config.*"
                                           "dataset.num_samples_per_file: 2 in the manifest, 3 in the config"):
        _opened(w, need_eval=False)


def test_dlio_dataset_without_manifest_runs_with_a_warning(tmp_path):
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    (tmp_path / "d" / "manifest.json").unlink()
    dataset = _opened(w, need_eval=False)
    assert dataset.manifest is None and len(dataset.train_files) == 4
    assert any("sizes and checksums are not checked" in warning for warning in dataset.warnings)
    assert run_workload(w, output=tmp_path / "out", quiet=True)["dldriver"]["coverage_ok"]


def test_deleted_file_is_found_without_reading_any(tmp_path, calls):
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    (tmp_path / "d" / "train" / "img_2_of_4.npz").unlink()
    with pytest.raises(DatasetError, match=re.escape(f"file://{tmp_path}/d/train/img_2_of_4.npz: missing")):
        _opened(w, need_eval=False)
    assert not [c for c in calls if c[0] in ("get", "get_range") and c[1] != "manifest.json"]


@pytest.mark.parametrize("fmt, prefixes", [("npz", ["train/", "valid/"]),
                                           ("tfrecord", ["index/", "train/", "valid/"])])
def test_check_lists_each_prefix_once_and_stats_nothing(tmp_path, calls, fmt, prefixes):
    w = make_dataset(tmp_path, workload_doc(tmp_path / "d", fmt, files=12, dataset={"num_files_eval": 3}))
    calls.clear()
    _opened(w, need_eval=True)
    assert sorted(k for (name, k), n in calls.items() if name == "list" and n == 1) == prefixes
    assert set(calls) == {("get", "manifest.json")} | {("list", p) for p in prefixes}


def test_file_an_interrupted_generate_never_wrote_says_generate(tmp_path):
    make_dataset(tmp_path, workload_doc(tmp_path / "d", files=4))
    path = tmp_path / "d" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = [e for e in manifest["files"] if not e["key"].endswith("img_3_of_4.npz")]
    manifest["complete"] = False
    path.write_text(json.dumps(manifest))
    w = workload(tmp_path, workload_doc(tmp_path / "d", files=4))
    with pytest.raises(DatasetError, match="img_3_of_4.npz: not generated.*dldriver generate"):
        _opened(w, need_eval=False)


@pytest.mark.parametrize("store", ["s3_uri", "az_uri"])
def test_object_cut_short_is_named_from_the_listing_alone(tmp_path, calls, store, request):
    """On object stores the listing brings sizes: a damaged object is named before the run, unread."""
    from dldriver.storage import open_storage

    uri = f"{request.getfixturevalue(store)}/d"
    w = make_dataset(tmp_path, workload_doc(uri, files=4))
    storage, key = open_storage(uri), "train/img_2_of_4.npz"
    whole = storage.get(key)
    storage.put(key, whole[:-10])
    calls.clear()
    with pytest.raises(DatasetError, match=re.escape(f"{uri}/{key}: truncated ({len(whole) - 10} of "
                                                     f"{len(whole)} bytes)")):
        _opened(w, need_eval=False)
    assert set(calls) == {("get", "manifest.json")}  # besides one listing per prefix, not counted here


DAMAGES = {
    "entry without key": (lambda m: m["files"][1].pop("key"), "files[1] has no key"),
    "files not a list": (lambda m: m.update(files={"train": []}), "files is not a list (dict)"),
    "count not a number": (lambda m: m.update(num_files_train="four"),
                           "num_files_train is not a file count ('four')"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_manifest_is_one_line_in_verify_run_and_generate(tmp_path, damage):
    import subprocess

    from test_run_helpers import PYTHON, ROOT, write_config

    doc = workload_doc(tmp_path / "d", files=2)
    make_dataset(tmp_path, doc)
    path = tmp_path / "d" / "manifest.json"
    manifest = json.loads(path.read_text())
    change, what = DAMAGES[damage]
    change(manifest)
    path.write_text(json.dumps(manifest))
    config = str(write_config(tmp_path / "w.yaml", doc))
    for command in (["verify"], ["run", "-o", str(tmp_path / "out")], ["generate", "-q"]):
        done = subprocess.run([PYTHON, "-m", "dldriver.cli", *command, config], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode != 0, command
        assert done.stderr.splitlines() == [
            f"error: file://{path}: manifest.json is damaged: {what}; run `dldriver generate --force` to "
            "rewrite the dataset"], command
