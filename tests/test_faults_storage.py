"""Storage faults seen from the command line: a hung endpoint, a missing bucket, bad bucket and container
names, a malformed connection string, a results folder that cannot be written. Each: the exit code, no
traceback, one line naming the place."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time

import pytest
import yaml

from conftest import unique_name
import faults
from faults import error_lines, fill, mount_tmpfs, unmount
from test_formats_support import BASE


def dldriver(*args, env=None, timeout=300):
    """`dldriver ARGS` in a fresh process (faults.dldriver); no fault may end in a traceback."""
    done = faults.dldriver(*args, env=env, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _config(tmp_path, data_folder: str) -> str:
    path = tmp_path / "workload.yaml"
    path.write_text(BASE.replace("DATA", data_folder))
    return str(path)




@pytest.fixture
def hung_endpoint():
    """A server that accepts every connection and never answers: http://127.0.0.1:PORT."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


def _hung_store(kind: str, endpoint: str) -> tuple[str, list[str], dict, str]:
    """(data folder, overrides, environment, the endpoint as messages name it) pointing at `endpoint`."""
    if kind == "s3":
        return ("s3://hung/data", ["storage.storage_options.s3_max_attempts=2",
                                   f"storage.storage_options.endpoint_url={endpoint}"],
                {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, endpoint)
    account = f"{endpoint}/devstoreaccount1"
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={account};")
    return "az://hung/data", ["storage.storage_options.azure_max_attempts=2"], \
        {"AZURE_STORAGE_CONNECTION_STRING": conn}, account


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_hung_endpoint_is_reported_while_waiting_and_named_at_the_end(tmp_path, hung_endpoint, kind):
    folder, options, env, named = _hung_store(kind, hung_endpoint)
    config = _config(tmp_path, folder)
    began = time.monotonic()
    # Short limits, the same behaviour: each attempt waits read_timeout, a notice comes once a call has
    # waited wait_notice_s.
    done = dldriver("verify", config, *options, "storage.storage_options.read_timeout=2",
                    "storage.storage_options.wait_notice_s=1", env=env)
    waited = time.monotonic() - began
    notices = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    errors = error_lines(done.stderr)
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert notices and all(f"{named} is not answering" in n for n in notices), done.stderr
    assert "read_timeout 2 s, 2 attempt(s)" in notices[0]
    assert re.match(rf"error: {folder}/manifest.json: the endpoint {named}/? did not answer; "
                    r"gave up after \d+ s \(connect_timeout 10 s, read_timeout 2 s, 2 attempt", errors[0]), errors
    assert 4 <= waited < 30                      # both attempts waited their read_timeout


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_verify_on_a_bucket_that_does_not_exist_says_so(tmp_path, request, kind):
    request.getfixturevalue({"s3": "s3_env", "azure": "azure_env"}[kind])
    root = f"{'s3' if kind == 's3' else 'az'}://{unique_name('absent')}"
    done = dldriver("verify", _config(tmp_path, f"{root}/data"))
    what = {"s3": "bucket", "azure": "container"}[kind]
    name = root.split("://")[1]
    assert done.returncode == 1 and error_lines(done.stderr) == [
        f"error: {root}/data/manifest.json: {what} {name!r} does not exist"], done.stderr


@pytest.mark.parametrize("kind, generation", [("s3", "head"), ("azure", "2.0.0")])
def test_reading_checkpoints_from_a_bucket_that_does_not_exist_says_so(tmp_path, request, kind, generation):
    """A checkpoint-only read phase (num_checkpoints_write=0) said '... model_states-0.pt is missing'."""
    request.getfixturevalue({"s3": "s3_env", "azure": "azure_env"}[kind])
    root = f"{'s3' if kind == 's3' else 'az'}://{unique_name('absent')}"
    doc = {"model": {"name": "ck", "model_size_bytes": 4096}, "framework": "pytorch",
           "workflow": {"train": False, "checkpoint": True},
           "checkpoint": {"checkpoint_folder": f"{root}/ck", "num_checkpoints_write": 0, "num_checkpoints_read": 1}}
    config = tmp_path / "ck.yaml"
    config.write_text(yaml.safe_dump(doc))
    done = faults.in_process("checkpoint", config, "-o", tmp_path / "out", "-q", "--dlio-defaults", generation)
    what = {"s3": "bucket", "azure": "container"}[kind]
    line = faults.refused(done, f"{root}/ck", f"was never written: {what} {root.split('://')[1]!r} does not exist")
    assert not (tmp_path / "out").exists(), line


@pytest.mark.parametrize("folder, storage, named", [
    ("s3://My_Bucket/data", "", "dataset.data_folder: 's3://My_Bucket/data': S3 bucket name 'My_Bucket'"),
    ("s3://ab/data", "", "dataset.data_folder: 's3://ab/data': S3 bucket name 'ab' must be 3 to 63"),
    ("s3://a..b/data", "", "S3 bucket name 'a..b' must not hold '..'"),
    ("s3://192.168.1.1/data", "", "S3 bucket name '192.168.1.1' must not hold '..' or be an IP address"),
    ("az://Data-Set/x", "", "dataset.data_folder: 'az://Data-Set/x': Azure container name 'Data-Set'"),
    ("az://a--b/x", "", "Azure container name 'a--b' may hold only"),
    ("data", "storage: {storage_type: s3, storage_root: Bad_Bucket}\n",
     "storage.storage_root: S3 bucket name 'Bad_Bucket'"),
])
def test_invalid_bucket_and_container_names_are_refused_by_validate(tmp_path, folder, storage, named):
    path = tmp_path / "workload.yaml"
    path.write_text(storage + BASE.replace("DATA", folder))
    done = dldriver("validate", str(path))
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1 and named in lines[0], done.stderr


@pytest.mark.parametrize("name", ["dl-driver.data-1", "abc", "a" * 63])
def test_valid_bucket_names_pass_validate(tmp_path, name):
    path = tmp_path / "workload.yaml"
    path.write_text(BASE.replace("DATA", f"s3://{name}/data"))
    assert dldriver("validate", str(path)).returncode == 0


@pytest.mark.parametrize("connection_string", ["garbage;AccountKey=NOTSHOWN0", "=;=;AccountKey=NOTSHOWN0"])
def test_malformed_azure_connection_string_is_one_line_without_the_secret(tmp_path, connection_string):
    done = dldriver("verify", _config(tmp_path, "az://box/data"),
                     env={"AZURE_STORAGE_CONNECTION_STRING": connection_string})
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: az://box/data: AZURE_STORAGE_CONNECTION_STRING is malformed (")
    assert "NOTSHOWN0" not in done.stderr + done.stdout


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs at tmp_path/mnt, which the test may fill or remount read-only."""
    mount_tmpfs(tmp_path / "mnt", "size=1m")
    yield tmp_path / "mnt"
    unmount(tmp_path / "mnt")


def _run_config(tmp_path) -> str:
    from test_run_helpers import make_dataset, workload_doc, write_config

    doc = workload_doc(tmp_path / "data", "npz", files=2, samples=1)
    make_dataset(tmp_path, doc)
    return str(write_config(tmp_path / "run.yaml", doc))


def test_run_into_a_read_only_file_system_names_the_folder(tmp_path, tiny_tmpfs):
    config = _run_config(tmp_path)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    done = dldriver("run", config, "-o", str(tiny_tmpfs / "res"), "-q")
    assert done.returncode == 1 and error_lines(done.stderr) == [
        f"error: {tiny_tmpfs}/res: cannot write the results folder: {tiny_tmpfs} is on a read-only file "
        "system; choose another with -o"], done.stderr


def test_run_into_a_full_file_system_is_refused_before_it_starts(tmp_path, tiny_tmpfs):
    config = _run_config(tmp_path)
    fill(tiny_tmpfs)
    done = dldriver("run", config, "-o", str(tiny_tmpfs / "res"), "-q")
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {tiny_tmpfs}/res: cannot write the results folder: the file system of "
                               f"{tiny_tmpfs} has 0 KiB free"), lines
    assert "Running" not in done.stderr  # refused before any work
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]


def test_results_that_fill_the_file_system_mid_write_are_one_line(tmp_path, tiny_tmpfs, monkeypatch, capfd):
    from dldriver import cli
    from dldriver.metrics import outdir

    config = _run_config(tmp_path)
    monkeypatch.setattr(outdir, "MIN_FREE_BYTES", 0)  # past the check: the writes themselves meet the full disk
    fill(tiny_tmpfs)
    assert cli.main(["run", config, "-o", str(tiny_tmpfs / "res"), "-q"]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert error_lines(err) == [f"error: {tiny_tmpfs}/res: cannot write the results folder: No space left on device; "
                            "free some space or choose another folder with -o"], err
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]
