"""generate_dataset and verify_dataset: parallel, reproducible, resumable, and checked against the manifest."""
from __future__ import annotations

import json
import os

import pytest

from dldriver.dataset.layout import dataset_files
from dldriver.dataset.verify import verify_dataset
from dldriver.errors import DatasetError
from dldriver.generate import generate_dataset
from test_formats_support import data_storage, workload

ARGS = ("dataset.num_files_train=4", "dataset.num_files_eval=2", "dataset.num_samples_per_file=2",
        "dataset.num_subfolders_train=2", "dataset.record_length_bytes=4096",
        "dataset.record_length_bytes_stdev=1024")


def _snapshot(tmp_path) -> dict[str, bytes]:
    storage = data_storage(tmp_path)
    return {k: storage.get(k) for k in storage.list() if k != "manifest.json"}


def _mtimes(tmp_path) -> dict[str, int]:
    storage = data_storage(tmp_path)
    return {k: os.stat(storage.local_path(k)).st_mtime_ns for k in storage.list()}


@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
def test_parallel_generation_is_reproducible(tmp_path, fmt):
    w = workload(tmp_path, f"dataset.format={fmt}", *ARGS)
    manifest = generate_dataset(w, processes=2, progress=False)
    first = _snapshot(tmp_path)
    keys = {s.key for split in ("train", "valid") for s in dataset_files(w, split)}
    assert keys <= set(first) and manifest["complete"]
    data_files = [e for e in manifest["files"] if "samples" in e]
    assert len(data_files) == 6 and len({e["size"] for e in data_files}) > 1  # stdev: sizes vary
    assert all(e["samples"] == 2 and e["record_bytes"] > 0 and len(e["crc32c"]) == 8 for e in data_files)
    generate_dataset(w, processes=1, progress=False, force=True)
    assert _snapshot(tmp_path) == first
    assert verify_dataset(w) == []


def test_resume_rewrites_only_missing_and_truncated_files(tmp_path):
    w = workload(tmp_path, "dataset.format=tfrecord", *ARGS)
    generate_dataset(w, processes=2, progress=False)
    storage = data_storage(tmp_path)
    before = _mtimes(tmp_path)
    gone, damaged = dataset_files(w, "train")[0].key, dataset_files(w, "valid")[1].key
    storage.delete(gone)
    good = storage.get(damaged)
    storage.put(damaged, good[:-1])
    after_damage = _mtimes(tmp_path)
    generate_dataset(w, processes=2, progress=False)
    after = _mtimes(tmp_path)
    changed = {k for k in after if after[k] != after_damage.get(k)} - {"manifest.json"}
    # A file is rewritten with its index file, as one unit.
    index = {f"index/{k.split('/')[0]}/{os.path.basename(k)}.idx" for k in (gone, damaged)}
    assert changed == {gone, damaged} | index
    assert storage.get(damaged) == good and set(after) == set(before)
    assert verify_dataset(w) == []


def test_resume_trusts_sizes_and_leaves_content_checks_to_verify(tmp_path):
    w = workload(tmp_path, *ARGS)
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    key = dataset_files(w, "train")[2].key
    good = storage.get(key)
    storage.put(key, good[:-1] + bytes([good[-1] ^ 1]))
    generate_dataset(w, processes=1, progress=False)
    assert storage.get(key) != good
    problems = verify_dataset(w)
    assert len(problems) == 1 and key in problems[0] and "altered" in problems[0]
    generate_dataset(w, processes=1, progress=False, force=True)
    assert verify_dataset(w) == []


def test_partial_manifest_resumes(tmp_path):
    w = workload(tmp_path, *ARGS)
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    # As if killed after two files: the manifest names only those, unfinished.
    manifest = json.loads(storage.get("manifest.json"))
    manifest["files"], manifest["complete"] = manifest["files"][:2], False
    storage.put("manifest.json", json.dumps(manifest).encode())
    assert any("absent from the manifest" in p for p in verify_dataset(w))
    assert generate_dataset(w, processes=1, progress=False)["complete"]
    assert verify_dataset(w) == []


def test_verify_names_every_problem(tmp_path):
    w = workload(tmp_path, "dataset.format=indexed_binary", *ARGS)
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    specs = dataset_files(w, "train")
    storage.delete(specs[0].key)
    storage.put(specs[1].key, storage.get(specs[1].key)[:100])
    altered = bytearray(storage.get(specs[2].key))
    altered[0] ^= 0xFF
    storage.put(specs[2].key, bytes(altered))
    storage.put("train/1/stray.bin", b"x")
    problems = verify_dataset(w)
    expected = [(specs[0].key, "missing"), (specs[1].key, "truncated"), (specs[2].key, "altered"),
                ("train/1/stray.bin", "extra")]
    for key, word in expected:
        assert any(key in p and word in p for p in problems), (key, word, problems)
    assert len(problems) == 4
    assert all("altered" not in p for p in verify_dataset(w, checksums=False))


def test_verify_checks_entries_of_older_manifests_by_their_sha256(tmp_path):
    """Manifests written before CRC-32C record a sha256 per file: verify still checks them."""
    import hashlib

    w = workload(tmp_path, *ARGS)
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    manifest = json.loads(storage.get("manifest.json"))
    for entry in manifest["files"]:
        del entry["crc32c"]
        entry["sha256"] = hashlib.sha256(storage.get(entry["key"])).hexdigest()
    storage.put("manifest.json", json.dumps(manifest).encode())
    assert verify_dataset(w) == []
    key = dataset_files(w, "train")[0].key
    good = storage.get(key)
    storage.put(key, good[:-1] + bytes([good[-1] ^ 1]))
    problems = verify_dataset(w)
    assert len(problems) == 1 and key in problems[0] and "altered (sha256" in problems[0]


def test_verify_without_manifest(tmp_path):
    with pytest.raises(DatasetError, match="run `dldriver generate`"):
        verify_dataset(workload(tmp_path))


def test_config_change_regenerates(tmp_path):
    generate_dataset(workload(tmp_path, *ARGS), processes=1, progress=False)
    w = workload(tmp_path, *ARGS, "train.seed=5")
    assert any("another dataset config" in p for p in verify_dataset(w))
    before = _snapshot(tmp_path)
    generate_dataset(w, processes=1, progress=False)
    after = _snapshot(tmp_path)
    assert set(after) == set(before) and all(after[k] != before[k] for k in after if "idx" not in k)
    assert verify_dataset(w) == []


def test_generate_leaves_a_layout_dlio_can_list_and_warns_about_foreign_files(tmp_path, capsys):
    """DLIO 2.0.0 lists valid/ even with no eval files; files of another config in the folder are named."""
    from dldriver.config import load_workload
    from dldriver.generate import generate_dataset

    shrink = [f"dataset.data_folder={tmp_path}", "dataset.record_length_bytes=4096",
              "dataset.record_length_bytes_stdev=0", "dataset.num_files_eval=0"]
    config = os.path.join(os.path.dirname(__file__), "..", "configs", "workloads", "unet3d_a100.yaml")
    generate_dataset(load_workload(config, shrink + ["dataset.num_files_train=4"]), progress=False)
    assert (tmp_path / "valid").is_dir() and not any((tmp_path / "valid").iterdir())
    assert "not part of this dataset" not in capsys.readouterr().err
    generate_dataset(load_workload(config, shrink + ["dataset.num_files_train=3"]), progress=False)
    err = capsys.readouterr().err
    assert "4 file(s) not part of this dataset" in err and "img_0_of_4.npz" in err


def _instrumented_npz(monkeypatch, tmp_path, act):
    """npz files whose build first calls act(spec) in the worker and logs 'index pid' to a file."""
    from dldriver.formats import npz
    log = tmp_path / "built.log"
    real = npz.NpzFormat.write_file

    def write_file(self, spec):
        act(spec)
        with open(log, "a") as f:
            f.write(f"{spec.split}/{spec.index} {os.getpid()}\n")
        return real(self, spec)

    monkeypatch.setattr(npz.NpzFormat, "write_file", write_file)
    return log


def test_files_go_to_whichever_worker_is_free(tmp_path, monkeypatch):
    """One slow file does not hold back the files after it: the other worker writes them."""
    import time
    log = tmp_path / "built.log"

    def slow_first_file(spec):
        # Busy until the other worker has built all but the last of the other 19 (a real condition, not
        # a guess at how long 19 files take); if files were dealt out in advance it never is, and after
        # the deadline the slow worker writes its share, which the count below refuses.
        deadline = time.monotonic() + 60
        while spec.index == 0 and time.monotonic() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 18:
                break
            time.sleep(0.01)

    assert _instrumented_npz(monkeypatch, tmp_path, slow_first_file) == log
    w = workload(tmp_path, "dataset.format=npz", "dataset.num_files_train=20", "dataset.num_files_eval=0",
                 "dataset.num_samples_per_file=1", "dataset.record_length_bytes=1024")
    generate_dataset(w, processes=2, progress=False)
    built = dict(line.split() for line in log.read_text().splitlines())
    slow_worker = built["train/0"]
    assert len(built) == 20 and len(set(built.values())) == 2
    assert sum(pid == slow_worker for pid in built.values()) <= 2  # the slow file, and at most the next one
    assert verify_dataset(w) == []


def test_a_killed_worker_stops_the_run_with_an_error_and_a_rerun_completes(tmp_path, monkeypatch):
    import signal

    def die_on_the_sixth(spec):
        if spec.index == 5 and spec.split == "train":
            os.kill(os.getpid(), signal.SIGKILL)

    _instrumented_npz(monkeypatch, tmp_path, die_on_the_sixth)
    w = workload(tmp_path, "dataset.format=npz", "dataset.num_files_train=12", "dataset.num_files_eval=0",
                 "dataset.num_samples_per_file=1", "dataset.record_length_bytes=1024")
    with pytest.raises(DatasetError, match=r"worker process \d+ killed by signal 9 \(SIGKILL, out of memory\?\)"):
        generate_dataset(w, processes=2, progress=False)
    manifest = json.loads(data_storage(tmp_path).get("manifest.json"))
    recorded = {e["key"] for e in manifest["files"]}
    assert not manifest["complete"] and dataset_files(w, "train")[5].key not in recorded
    monkeypatch.undo()
    generate_dataset(w, processes=2, progress=False)
    assert verify_dataset(w) == []


def test_saving_the_manifest_never_takes_more_than_a_twentieth_of_the_time(monkeypatch):
    """A million files make a 200 MB manifest: the next save waits 20 times as long as the last took."""
    import time
    from dldriver.generate import command as generate

    monkeypatch.setattr(generate, "SAVE_EVERY_S", 0.0)
    saves = []

    def slow_save():
        saves.append(time.monotonic())
        time.sleep(0.05)

    def events():
        for i in range(60):
            time.sleep(0.01)
            yield "file", (f"train/f{i}", [{"key": f"train/f{i}", "size": 1}], 1)

    entries = {}
    began = time.monotonic()
    generate._record(events(), entries, None, slow_save)
    took = time.monotonic() - began
    assert len(entries) == 60
    # ~0.6 s of files (longer on a busy machine), then 50 ms saves at least 1 s apart: one save per
    # second that passed, at most, and never fewer than one.
    assert 1 <= len(saves) <= 1 + took / 1.0
    assert all(b - a >= 1.0 for a, b in zip(saves, saves[1:]))


def test_a_big_manifest_is_written_compact(tmp_path):
    from dldriver.dataset.manifest import READABLE_UP_TO, save_manifest
    storage = data_storage(tmp_path)
    for count, one_line in ((3, False), (READABLE_UP_TO + 1, True)):
        files = [{"key": f"train/f{i}", "size": i} for i in range(count)]
        save_manifest(storage, {"files": files})
        text = storage.get("manifest.json").decode()
        assert json.loads(text)["files"] == files
        assert (len(text.splitlines()) == 1) == one_line  # indented while a person would read it


def test_a_manifest_that_names_its_dataset_hash_config_hash_is_still_this_dataset(tmp_path):
    """Manifests before the rename record the dataset's hash as `config_hash`: resume and verify read it."""
    w = workload(tmp_path, *ARGS)
    generate_dataset(w, processes=1, progress=False)
    storage = data_storage(tmp_path)
    manifest = json.loads(storage.get("manifest.json"))
    manifest["config_hash"] = manifest.pop("dataset_hash")
    storage.put("manifest.json", json.dumps(manifest).encode())
    before = _mtimes(tmp_path)
    assert verify_dataset(w) == []
    generate_dataset(w, processes=1, progress=False)
    after = _mtimes(tmp_path)
    assert {k: t for k, t in after.items() if k != "manifest.json"} == \
        {k: t for k, t in before.items() if k != "manifest.json"}
