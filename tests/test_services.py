"""`dldriver services`: start (idempotent, detached), status, env, stop by pid, and its refusals."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import S3_PORT_SPAN, free_port_block
from dldriver import services
from dldriver.errors import ServiceError, StorageError
from dldriver.services import azurite, process, seaweedfs
from dldriver.storage import open_storage


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "dldriver.cli", "services", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_lifecycle_outlives_the_command(tmp_path):
    """start in one process, use and stop from others (as two Snakemake rules would)."""
    env = {**os.environ, "DLDRIVER_SERVICES_DIR": str(tmp_path), "DLDRIVER_S3_PORT": str(free_port_block(S3_PORT_SPAN)),
           "DLDRIVER_AZURE_PORT": str(free_port_block(1))}
    try:
        first = cli("start", env=env)
        assert first.returncode == 0, first.stderr
        assert "started" in first.stderr
        exports = dict(line[len("export "):].split("=", 1) for line in first.stdout.splitlines())
        assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{env['DLDRIVER_S3_PORT']}"
        assert set(exports) >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING"}

        again = cli("start", env=env)  # idempotent: the same servers, the same environment
        assert again.returncode == 0 and again.stdout == first.stdout
        assert again.stderr.count("already running") == 2

        status = cli("status", env=env)
        assert status.returncode == 0 and status.stdout.count("running (pid") == 2
        assert cli("env", "s3", env=env).stdout.startswith("export AWS_ENDPOINT_URL=")

        pids = [seaweedfs.status(tmp_path)["pid"], azurite.status(tmp_path)["pid"]]
        stop = cli("stop", env=env)
        assert stop.returncode == 0 and stop.stderr.count("stopped (pid") == 2
        assert not any(process.is_alive(pid, "") for pid in pids)
        status = cli("status", env=env)
        assert status.returncode == services.NOT_RUNNING and status.stdout.count("stopped") == 2
    finally:
        cli("stop", env=env)


def test_stop_and_restart_keep_the_data(private_s3):
    storage = open_storage("s3://keep/p", private_s3.options)
    storage.put("k", b"v")
    pid = seaweedfs.status(private_s3.state_dir)["pid"]
    assert private_s3.stop() is True
    assert not process.is_alive(pid, seaweedfs.MARKER)
    assert private_s3.stop() is False  # nothing left to stop
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
        open_storage("s3://keep/p", {**private_s3.options, "s3_max_attempts": 1}).get("k")
    private_s3.start()
    assert open_storage("s3://keep/p", private_s3.options).get("k") == b"v"


def test_stale_state_and_reused_pid_are_never_killed(tmp_path):
    """A state file whose pid now runs another program: status says stopped, stop leaves it alone."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        folder = tmp_path / "s3"
        folder.mkdir()
        process.write_state(folder, {"pid": other.pid, "port": 1, "endpoint": "x", "folder": str(folder)})
        assert seaweedfs.status(tmp_path) is None
        assert not (folder / process.STATE_FILE).exists()
        process.write_state(folder, {"pid": other.pid, "port": 1, "endpoint": "x", "folder": str(folder)})
        assert services.stop_s3(tmp_path) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_busy_port_is_named(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServiceError, match=rf"azure: port\(s\) {port} on 127.0.0.1 already in use.*"
                                               "DLDRIVER_AZURE_PORT"):
            services.start_azure(tmp_path, port=port)


def test_free_port_blocks_lie_below_the_ephemeral_range():
    """A block found free there stays free until its server binds it, or binds it again after a restart:
    no outgoing connection takes one of its ports meanwhile."""
    start = process.ephemeral_ports_start()
    assert start == int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(20):
        base = process.free_port_block(S3_PORT_SPAN)
        assert 20000 <= base and base + S3_PORT_SPAN <= start


def test_env_without_a_running_server_uses_the_configured_ports(tmp_path, monkeypatch):
    monkeypatch.setenv("DLDRIVER_S3_PORT", "18444")
    monkeypatch.setenv("DLDRIVER_AZURE_PORT", "18555")
    env = services.service_env("all", tmp_path)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:18444"
    assert "BlobEndpoint=http://127.0.0.1:18555/devstoreaccount1" in env["AZURE_STORAGE_CONNECTION_STRING"]


def test_missing_weed_binary(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="weed.*make setup"):
        seaweedfs.find_weed()


def test_default_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DLDRIVER_SERVICES_DIR", str(tmp_path))
    assert process.default_state_dir() == tmp_path
    monkeypatch.delenv("DLDRIVER_SERVICES_DIR")
    assert process.default_state_dir().name == ".services"


def test_attached_servers_die_with_a_killed_parent(tmp_path):
    """A test session killed by a timeout (SIGKILL, no teardown) must not leave its servers behind."""
    code = (f"from dldriver.services import azurite\n"
            f"print(azurite.start({str(tmp_path)!r}, port={free_port_block(1)}, attached=True)['pid'], flush=True)\n"
            f"import time; time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert process.is_alive(pid, azurite.MARKER)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while process.is_alive(pid, azurite.MARKER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process.is_alive(pid, azurite.MARKER)
