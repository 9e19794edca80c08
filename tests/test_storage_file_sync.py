"""Folder fsyncs of the file backend: one per fsynced file, or one per folder inside batched_sync."""
from __future__ import annotations

import dldriver.storage.file as file_backend
from dldriver.storage import open_storage


def _count_folder_syncs(monkeypatch) -> list[str]:
    synced: list[str] = []
    real = file_backend._fsync_dir
    monkeypatch.setattr(file_backend, "_fsync_dir", lambda folder: (synced.append(folder), real(folder)))
    return synced


def test_each_fsynced_write_syncs_its_folder(tmp_path, monkeypatch):
    synced = _count_folder_syncs(monkeypatch)
    storage = open_storage(str(tmp_path))
    storage.put("a/1", b"x", fsync=True)
    storage.put("a/2", b"y", fsync=True)
    storage.put("a/3", b"z")
    assert synced == [str(tmp_path / "a")] * 2


def test_batched_sync_syncs_each_folder_once_at_the_end(tmp_path, monkeypatch):
    synced = _count_folder_syncs(monkeypatch)
    storage = open_storage(str(tmp_path))
    with storage.batched_sync():
        for i in range(5):
            with storage.open_writer(f"ckpt/f{i}", fsync=True) as out:
                out.write(b"data")
        storage.put("other/g", b"data", fsync=True)
        assert synced == []
    assert synced == [str(tmp_path / "ckpt"), str(tmp_path / "other")]
    assert storage.get("ckpt/f4") == b"data"


def test_batched_sync_still_syncs_after_a_failure(tmp_path, monkeypatch):
    synced = _count_folder_syncs(monkeypatch)
    storage = open_storage(str(tmp_path))
    try:
        with storage.batched_sync():
            storage.put("ckpt/f0", b"data", fsync=True)
            raise RuntimeError("a later file failed")
    except RuntimeError:
        pass
    assert synced == [str(tmp_path / "ckpt")]
