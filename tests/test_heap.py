"""heap.keep_freed_buffers: file-sized buffers are reused, not faulted in from the kernel again each time."""
from __future__ import annotations

import subprocess
import sys

import pytest

# Puts 30 generated files of 4 MiB (bytearrays, as npz and npy files are built) to `uri` and prints the
# page faults the last 20 of them took. Run in a process of its own: the setting is process-wide.
PROGRAM = """
import os, resource, sys
from dldriver.heap import keep_freed_buffers
from dldriver.storage import open_storage
if sys.argv[1] == "keep":
    assert keep_freed_buffers()
storage, payload = open_storage(sys.argv[2]), os.urandom(4 << 20)
for i in range(30):
    if i == 10:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    storage.put(f"file{i}", bytearray(payload))
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def _faults(mode: str, uri: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode, uri], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt; elsewhere a no-op")
def test_file_buffers_are_reused_without_page_faults(az_uri):
    """Azure's SDK needs bytes, so each put copies the file once more: with glibc's own limits both
    buffers were faulted in afresh on every put (2,048 faults, ~2 ms of CPU per 4 MiB file)."""
    pages_per_file = (4 << 20) // 4096
    assert _faults("default", f"{az_uri}/default") > 10 * pages_per_file
    assert _faults("keep", f"{az_uri}/keep") < pages_per_file
