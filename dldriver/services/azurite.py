"""Azurite 3.35.0 (npm, installed by `make setup` into node_modules) as the local Azure Blob server.

Bound to 127.0.0.1 with telemetry off. The account is Azurite's well-known development account; its
key is published in Microsoft's documentation and is not a secret.
"""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

from dldriver.errors import ServiceError
from dldriver.services import process

NAME = "azure"
MARKER = "azurite"
DEFAULT_PORT = 10000
PORT_ENV = "DLDRIVER_AZURE_PORT"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def find_azurite() -> str:
    """node_modules/.bin/azurite-blob in the repository, else azurite-blob on PATH."""
    repo = Path(__file__).resolve().parents[2]
    local = repo / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if not found:
        raise ServiceError(f"azure: azurite-blob was not found in {local.parent} or on PATH; "
                           "run `make setup` (npm install)")
    return found


def configured_port(port: int | None = None) -> int:
    return int(port or process.port_from_env(PORT_ENV, DEFAULT_PORT))


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}/{ACCOUNT}"


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={endpoint(port)};")


def env_for(port: int) -> dict[str, str]:
    return {"AZURE_STORAGE_CONNECTION_STRING": connection_string(port)}


def _probe(port: int) -> bool:
    """Ready when the port accepts a connection and the service answers a signed list_containers."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(connection_string(port), retry_total=0,
                                                      connection_timeout=1, read_timeout=2)
    try:
        next(iter(client.list_containers(results_per_page=1).by_page()))
    except AzureError:
        return False
    finally:
        client.close()
    return True


def status(state_dir=None) -> dict | None:
    return process.running_state(process.service_folder(state_dir, NAME), MARKER)


def start(state_dir=None, port: int | None = None, timeout: float = 60, attached: bool = False) -> dict:
    """Start Azurite unless it already runs; return its state."""
    folder = process.service_folder(state_dir, NAME)
    running = process.running_state(folder, MARKER)
    if running:
        return running
    port = configured_port(port)
    process.check_ports_free(NAME, [port], PORT_ENV)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    cmd = [find_azurite(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "data"),
           "--skipApiVersionCheck", "--disableProductStyleUrl", "--disableTelemetry", "--silent"]
    return process.launch(NAME, MARKER, folder, cmd, port, endpoint(port), lambda: _probe(port), timeout,
                          attached=attached)


def stop(state_dir=None) -> dict | None:
    """Stop the server by its recorded pid; return the state it had, or None if it was not running."""
    return process.stop_recorded(process.service_folder(state_dir, NAME), MARKER)
