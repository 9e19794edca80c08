"""Checkpoint writes and reads through every backend: names, sizes, bytes, missing checkpoints, memory."""
import json
import subprocess
import sys

import pytest

from dldriver.checkpoint import Checkpointer, checkpoint_layout
from dldriver.checkpoint.stream import ChunkSource, read_files, write_files
from dldriver.config.model import Parallelism, Transformer, Workload
from dldriver.config.uri import checkpoint_uri, storage_options
from dldriver.errors import CheckpointError
from dldriver.storage import open_storage


def small_llama(folder, tp=2, pp=2, zero=1, framework="pytorch"):
    w = Workload()
    w.framework = framework
    w.model.type, w.model.num_layers = "transformer", 4
    w.model.transformer = Transformer(1000, 64, 256, 8, 2)
    w.model.parallelism = Parallelism(tp, pp, -1, zero)
    w.checkpoint.checkpoint_folder = folder
    return w


def store(w):
    """The storage the run driver hands a Checkpointer: the workload's checkpoint folder."""
    return open_storage(checkpoint_uri(w), storage_options(w))


def roundtrip(folder, framework, world=8, scale=1.0, fsync=False):
    """Every rank writes then reads back (and checks the bytes of) checkpoint global_epoch1_step1."""
    w = small_llama(folder, framework=framework)
    w.checkpoint.fsync = fsync
    written = []
    for rank in range(world):
        ck = Checkpointer(w, rank, world, store(w), scale, chunk_bytes=64 * 1024)
        saved = ck.save(1, 1)
        loaded = ck.load(1, 1, verify=True)
        assert saved["bytes"] == loaded["bytes"] == sum(n for _, n in ck.files)
        written += [(f"global_epoch1_step1/{n}", b) for n, b in ck.files]
    storage = ck.storage
    assert sorted(storage.list("global_epoch1_step1/")) == sorted(k for k, _ in written)
    assert all(storage.stat(k) == b for k, b in written)
    # 8 optimizer files and 4 x 3 layer files (ZeRO 1, PP 2: data-parallel rank 0 saves per layer); tensorflow
    # writes an index and a data file for each, and one state file
    assert len(written) == {"pytorch": 20, "tensorflow": 2 * 20 + 1}[framework]
    return storage


FRAMEWORKS = pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])


@FRAMEWORKS
def test_file_backend_roundtrip(tmp_path, framework):
    roundtrip(str(tmp_path / "ckpt"), framework, fsync=True)


@FRAMEWORKS
def test_direct_backend_roundtrip(tmp_path, framework):
    roundtrip(f"direct://{tmp_path}/ckpt", framework, fsync=True)


@FRAMEWORKS
def test_s3_backend_roundtrip(s3_uri, framework):
    roundtrip(f"{s3_uri}/ckpt", framework)


@FRAMEWORKS
def test_azure_backend_roundtrip(az_uri, framework):
    roundtrip(f"{az_uri}/ckpt", framework)


def test_content_is_what_was_written(tmp_path):
    storage = open_storage(f"file://{tmp_path}")
    source = ChunkSource(randomize=True, seed=3, chunk_bytes=1000)
    write_files(storage, "f", [("a.pt", 2500), ("b.pt", 7)], source, fsync=False)
    expected = b"".join(bytes(c) for c in source.chunks("a.pt", 2500))
    assert storage.get("f/a.pt") == expected and len(set(expected)) > 200
    ones = ChunkSource(randomize=False, seed=0, chunk_bytes=1000)
    write_files(storage, "g", [("a.pt", 1500)], ones, fsync=False)
    assert storage.get("g/a.pt") == b"\x01" * 1500
    # a changed byte is caught by the verifying read
    path = tmp_path / "f" / "a.pt"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="f/a.pt differs"):
        read_files(storage, "f", [("a.pt", 2500)], 1000, verify=source)


def test_reading_a_never_written_checkpoint_names_it(tmp_path):
    w = small_llama(str(tmp_path / "ckpt"))
    ck = Checkpointer(w, 0, 8, store(w))
    with pytest.raises(CheckpointError, match=r"global_epoch1_step7 was never written: .*_model_states.pt is missing"):
        ck.load(1, 7)


def test_wrong_size_is_an_error(tmp_path):
    storage = open_storage(f"file://{tmp_path}")
    storage.put("c/x.pt", b"12345")
    with pytest.raises(CheckpointError, match="c/x.pt holds 5 bytes, the layout says 6"):
        read_files(storage, "c", [("x.pt", 6)])


@pytest.mark.parametrize("store", ["s3", "azure"])
def test_object_store_reads_check_sizes_and_name_missing_files(request, store):
    # Small files come whole in one GET (no HEAD first), large ones by ranges after a HEAD: both paths
    # still refuse a wrong size and name a file that was never written.
    storage = open_storage(request.getfixturevalue({"s3": "s3_uri", "azure": "az_uri"}[store]))
    storage.put("c/small.pt", b"12345")
    storage.put("c/large.pt", bytes(9 << 20))
    with pytest.raises(CheckpointError, match="c/small.pt holds 5 bytes, the layout says 6"):
        read_files(storage, "c", [("small.pt", 6)])
    with pytest.raises(CheckpointError, match="c/large.pt holds 9437184 bytes, the layout says 9437185"):
        read_files(storage, "c", [("large.pt", (9 << 20) + 1)])
    with pytest.raises(CheckpointError, match="c was never written: c/gone.pt is missing"):
        read_files(storage, "c", [("small.pt", 5), ("gone.pt", 5)])
    assert read_files(storage, "c", [("small.pt", 5), ("large.pt", 9 << 20)]) == 5 + (9 << 20)


@pytest.mark.parametrize("store", ["s3", "azure"])
def test_object_store_checkpoint_of_many_small_and_large_files_reads_back_what_was_written(request, store):
    storage = open_storage(request.getfixturevalue({"s3": "s3_uri", "azure": "az_uri"}[store]), threads=4)
    source = ChunkSource(True, seed=3, chunk_bytes=4 << 20)
    files = [(f"small{i}.pt", 1000 + i) for i in range(6)] + [("large.pt", (17 << 20) + 3)]
    assert write_files(storage, "f", files, source, fsync=False) == sum(n for _, n in files)
    assert read_files(storage, "f", files, 4 << 20, verify=source) == sum(n for _, n in files)


def test_scaled_llama_70b_writes_and_reads_all_its_files(tmp_path):
    from tests.test_checkpoint_layout import llama_70b

    w = llama_70b()
    w.checkpoint.checkpoint_folder = str(tmp_path / "ckpt")
    lay = checkpoint_layout(w, 64, scale=2e-5)
    for rank in range(64):
        ck = Checkpointer(w, rank, 64, store(w), scale=2e-5, chunk_bytes=1 << 20)
        ck.save(1, 1)
        ck.load(1, 1)
    on_disk = sorted(p.name for p in (tmp_path / "ckpt" / "global_epoch1_step1").iterdir())
    assert on_disk == sorted(n for files in lay for n, _ in files)
    assert len(on_disk) == 720


MEMORY_SCRIPT = """
import json, resource, sys
from dldriver.checkpoint import Checkpointer
from dldriver.config.model import Workload
from dldriver.config.uri import checkpoint_uri, storage_options
from dldriver.storage import open_storage
w = Workload()
w.framework = "pytorch"
w.model.model_size_bytes = 300 * 1024 * 1024
w.checkpoint.checkpoint_folder = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
ck = Checkpointer(w, 0, 1, open_storage(checkpoint_uri(w)))
ck.save(1, 1)
ck.load(1, 1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "after": after}))
"""


def test_memory_stays_bounded(tmp_path):
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "ckpt")],
                         check=True, capture_output=True, text=True)
    rss = json.loads(out.stdout)
    # 300 MiB written and read back: peak RSS grows by the chunk pool and one read chunk, not 300 MiB
    assert rss["after"] - rss["before"] < 80 * 1024 * 1024
    assert (tmp_path / "ckpt" / "global_epoch1_step1" / "model_states-0.pt").stat().st_size == 300 * 1024 * 1024


def test_recovery_rank_shift_reads_what_the_next_host_wrote(tmp_path):
    """DLIO's recovery_rank_shift (which DLIO HEAD ignores): on 2 hosts of 4 ranks, rank r loads the files
    rank r + 4 wrote, checked byte for byte against that rank's data; on one host nothing moves."""
    w = small_llama(str(tmp_path / "ckpt"))
    w.checkpoint.recovery_rank_shift = True
    ranks = [Checkpointer(w, rank, 8, store(w), chunk_bytes=64 * 1024, ranks_per_host=4) for rank in range(8)]
    for ck in ranks:
        ck.save(1, 1)
    for ck in ranks:
        other = (ck.rank + 4) % 8
        assert ck.load_rank == other
        assert ck.load(1, 1, verify=True)["bytes"] == sum(n for _, n in ranks[other].files)
    assert Checkpointer(w, 3, 8, store(w), ranks_per_host=8).load_rank == 3
    w.checkpoint.recovery_rank_shift = False
    assert Checkpointer(w, 3, 8, store(w), ranks_per_host=4).load_rank == 3
