"""generate against a failing S3 store: the server stopped mid-run, then restarted; refused credentials.

Retries are cut short (2 attempts, 1 s connect timeout) so that each failure takes seconds, not minutes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from dldriver import cli
from dldriver.dataset.manifest import load_manifest
from dldriver.generate import command as generate
from dldriver.storage import open_storage
from dldriver.storage.s3 import S3Storage
from test_formats_support import BASE

FILES = 40
STOP_AT = "train/img_25_of_40.npz"  # in the third run of files: earlier runs have finished and been recorded
PUT = S3Storage.put
SHORT_RETRIES = ("storage.storage_options.s3_max_attempts=2", "storage.storage_options.connect_timeout=1")


def _config(tmp_path, root: str, options: dict) -> tuple[str, list[str]]:
    path = tmp_path / "workload.yaml"
    path.write_text(BASE)
    overrides = [f"dataset.data_folder={root}/data", f"dataset.num_files_train={FILES}", "dataset.num_files_eval=0",
                 "dataset.record_length_bytes=4096", *SHORT_RETRIES,
                 *(f"storage.storage_options.{k}={v}" for k, v in options.items())]
    return str(path), overrides


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def _wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _stop_before(monkeypatch, key: str, reached: Path, resume: Path) -> None:
    """S3 puts of `key` (in whichever worker process gets it) first wait until the test has stopped the
    server. Marker files, not multiprocessing events: a worker the pool kills while it waits on an event
    would leave the event's next set() waiting for it forever."""
    def held_put(self, k, data, fsync=False):
        if k == key:
            reached.touch()
            _wait_for(resume.exists)
        return PUT(self, k, data, fsync)

    monkeypatch.setattr(S3Storage, "put", held_put)


def _stop_once_recorded(server, storage, reached: Path, resume: Path) -> None:
    """When a worker reached the stop key and the parent has saved a manifest, stop the server."""
    _wait_for(reached.exists)
    _wait_for(lambda: storage.exists("manifest.json"))
    server.stop()
    resume.touch()


def test_server_stopped_mid_generation_then_rerun_completes(tmp_path, private_s3, monkeypatch, capfd):
    config, overrides = _config(tmp_path, "s3://faults", private_s3.options)
    monkeypatch.setattr(generate, "SAVE_EVERY_S", 0.0)  # save after every run of files, to resume from
    reached, resume = tmp_path / "reached", tmp_path / "resume"
    _stop_before(monkeypatch, STOP_AT, reached, resume)
    storage = open_storage("s3://faults/data", private_s3.options)
    stopper = threading.Thread(target=_stop_once_recorded, args=(private_s3, storage, reached, resume))
    stopper.start()
    try:
        code = cli.main(["generate", config, *overrides, "--processes", "2", "--quiet"])
    finally:
        resume.touch()
        stopper.join()
    lines = _error_lines(capfd.readouterr().err)
    assert code == 1 and len(lines) == 1, lines
    # A server caught while shutting down may still answer 500 before it closes its port: either way the
    # one line names the object.
    assert re.match(r"error: s3://faults/data/train/img_\d+_of_40\.npz: (cannot reach the S3 endpoint|InternalError)",
                    lines[0]), lines[0]

    private_s3.start()
    manifest = load_manifest(storage)
    assert manifest is not None and not manifest["complete"] and manifest["files"]
    stored = set(storage.list("train/"))
    assert {e["key"] for e in manifest["files"]} <= stored  # it claims no file that is not there
    puts = []
    monkeypatch.setattr(S3Storage, "put", lambda self, k, data, fsync=False: puts.append(k) or PUT(self, k, data))
    assert cli.main(["generate", config, *overrides, "--processes", "1", "--quiet"]) == 0
    data_puts = [k for k in puts if k != "manifest.json"]
    assert 0 < len(data_puts) < FILES
    assert cli.main(["verify", config, *overrides]) == 0


def test_wrong_secret_names_the_uri(tmp_path, s3_uri):
    config, overrides = _config(tmp_path, s3_uri, {})
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    done = subprocess.run([sys.executable, "-m", "dldriver.cli", "generate", config, *overrides, "-j", "2", "-q"],
                          env=env, capture_output=True, text=True, timeout=120)
    lines = _error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert re.match(rf"error: {s3_uri}/data/\S+: credentials refused by ", lines[0]), lines


def test_sigterm_saves_what_finished_stops_the_workers_and_a_rerun_completes(tmp_path):
    """SIGTERM (scancel, a time limit, Snakemake stopping a job) ends a generation as Ctrl-C does."""
    import psutil

    config, overrides = _config(tmp_path, str(tmp_path), {})
    overrides = [o for o in overrides if "s3_" not in o and "connect_timeout" not in o]
    overrides = [o.replace(f"num_files_train={FILES}", "num_files_train=3000") for o in overrides]
    command = [sys.executable, "-m", "dldriver.cli", "generate", config, *overrides, "-j", "2", "-q"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    train = tmp_path / "data" / "train"
    _wait_for(lambda: train.exists() and len(list(train.iterdir())) >= 20)
    workers = psutil.Process(proc.pid).children()
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip() == "terminated", err
    assert len(workers) == 2
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    manifest = load_manifest(open_storage(str(tmp_path / "data")))
    assert not manifest["complete"] and 0 < len(manifest["files"]) < 3000
    assert subprocess.run(command, timeout=300).returncode == 0
    assert cli.main(["verify", config, *overrides]) == 0
