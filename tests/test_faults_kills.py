"""Kills: SIGKILL of `generate`'s parent process, which runs no cleanup, must not leave its workers
writing files that no manifest records; a rerun then completes and `verify` finds nothing extra."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from dldriver import cli
from dldriver.dataset.manifest import load_manifest
from dldriver.storage import open_storage
from dldriver.storage.file import TMP_MARK
from test_formats_support import BASE


def _wait_for(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _data_files(folder) -> list[str]:
    return [p.name for p in folder.iterdir()] if folder.exists() else []


def test_sigkill_of_generate_parent_stops_its_workers_and_a_rerun_completes(tmp_path):
    config = tmp_path / "workload.yaml"
    config.write_text(BASE.replace("DATA", str(tmp_path / "data")))
    overrides = ["dataset.num_files_train=3000", "dataset.num_files_eval=0", "dataset.record_length_bytes=4096"]
    command = [sys.executable, "-m", "dldriver.cli", "generate", str(config), *overrides, "-j", "2", "-q"]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    train = tmp_path / "data" / "train"
    assert _wait_for(lambda: len(_data_files(train)) >= 50)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers outlived their killed parent: {[p.pid for p in alive]}"
    after_kill = set(_data_files(train))
    time.sleep(1.0)
    assert set(_data_files(train)) == after_kill  # nobody writes any more
    assert len([n for n in after_kill if TMP_MARK not in n]) < 3000

    # What is left: complete files (recorded or not, each rewritten with the same bytes) and temporaries.
    assert subprocess.run(command, timeout=300).returncode == 0
    manifest = load_manifest(open_storage(str(tmp_path / "data")))
    assert manifest["complete"] and len(manifest["files"]) == 3000
    assert not [n for n in _data_files(train) if TMP_MARK in n]
    assert cli.main(["verify", str(config), *overrides, "--quick"]) == 0
