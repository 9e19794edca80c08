"""The one comparison of what is stored with what the manifest says (run start, resume, verify)."""
import pytest

from dldriver.dataset.compare import (CUT_SHORT, EXTRA, FOREIGN, MISSING, REPLACED, Mismatch, compare,
                                      stat_listing)
from dldriver.storage import open_storage

ENTRIES = [{"key": "train/a.npz", "size": 100}, {"key": "train/b.npz", "size": 200}]
WHOLE = {"train/a.npz": 100, "train/b.npz": 200}


def uri(key):
    return f"s3://bucket/d/{key}"


@pytest.mark.parametrize("case, listing, expected, extras, found, message", [
    ("missing", {"train/a.npz": 100}, (), False,
     [Mismatch("train/b.npz", MISSING, expected=200)], "s3://bucket/d/train/b.npz: missing"),
    ("cut short", WHOLE | {"train/b.npz": 150}, (), False,
     [Mismatch("train/b.npz", CUT_SHORT, 150, 200)], "s3://bucket/d/train/b.npz: truncated (150 of 200 bytes)"),
    ("replaced", WHOLE | {"train/a.npz": 101}, (), False,
     [Mismatch("train/a.npz", REPLACED, 101, 100)],
     "s3://bucket/d/train/a.npz: 101 bytes, the manifest says 100 (replaced)"),
    ("extra", WHOLE | {"train/c.npz": 7}, (), True,
     [Mismatch("train/c.npz", EXTRA, 7)], "s3://bucket/d/train/c.npz: extra file, not in the manifest"),
    ("foreign", WHOLE, ("train/a.npz", "train/z.npz"), False,
     [Mismatch("train/z.npz", FOREIGN)], "s3://bucket/d/train/z.npz: not generated (absent from the manifest)"),
])
def test_each_kind_of_mismatch_is_found_and_said_one_way(case, listing, expected, extras, found, message):
    assert compare(listing, ENTRIES, expected=expected, extras=extras) == found
    assert [m.message(uri) for m in found] == [message]


def test_a_whole_dataset_matches_and_unknown_sizes_are_not_checked():
    assert compare(WHOLE, ENTRIES, expected=list(WHOLE), extras=True) == []
    # a file-system listing tells names only: presence is checked, sizes are not
    assert compare({"train/a.npz": None, "train/b.npz": None}, ENTRIES) == []
    # extras are the caller's choice (a run reading a subset lists folders holding more files)
    assert compare(WHOLE | {"train/c.npz": 1}, ENTRIES) == []


def test_stat_listing_tells_sizes_of_the_files_that_exist(tmp_path):
    storage = open_storage(f"file://{tmp_path}")
    storage.put("train/a.npz", b"x" * 100)
    storage.put("train/b.npz", b"x" * 150)
    listing = stat_listing(storage, ["train/a.npz", "train/b.npz", "train/gone.npz"])
    assert listing == {"train/a.npz": 100, "train/b.npz": 150}
    assert compare(listing, ENTRIES) == [Mismatch("train/b.npz", CUT_SHORT, 150, 200)]
