"""Shared fixtures: real SeaweedFS (S3) and Azurite (Azure Blob) servers.

They start through dldriver.services, the same code as `dldriver services start`, on free test-only
ports and a temporary state dir, so that they run beside a demo instance on the default ports.
A server that cannot start fails the tests that need it, with its log tail: nothing is skipped.
"""
from __future__ import annotations

import uuid

import pytest

from dldriver import services
from dldriver.errors import ServiceError
from dldriver.services import process, seaweedfs

S3_PORT_SPAN = seaweedfs.PORT_SPAN
free_port_block = process.free_port_block


def unique_name(prefix: str) -> str:
    """A bucket / container name valid on S3 and Azure (lowercase letters, digits, hyphens)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _start(start, state_dir, port):
    try:
        # attached: a test run killed by a timeout takes its servers with it.
        return start(state_dir, port=port, attached=True)
    except ServiceError as err:
        pytest.fail(f"local server did not start: {err}", pytrace=False)


def _serve(start, stop, state_dir, span):
    """Start a server on a free block of `span` ports, set its variables in os.environ for the session,
    yield them, stop it after. A block taken by another program between the check and the bind (another
    test session on this machine) is not this code's fault: a fresh block is tried, three at most."""
    for attempt in range(3):
        try:
            env = start(state_dir, port=free_port_block(span), attached=True)
            break
        except ServiceError as err:
            if attempt == 2:
                pytest.fail(f"local server did not start: {err}", pytrace=False)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            yield env
    finally:
        stop(state_dir)


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def s3_env(services_dir):
    """The S3 variables (AWS_ENDPOINT_URL, keys, region) of the session's SeaweedFS, set in os.environ."""
    yield from _serve(services.start_s3, services.stop_s3, services_dir, S3_PORT_SPAN)


@pytest.fixture(scope="session")
def azure_env(services_dir):
    """AZURE_STORAGE_CONNECTION_STRING of the session's Azurite, set in os.environ."""
    yield from _serve(services.start_azure, services.stop_azure, services_dir, 1)


@pytest.fixture
def s3_uri(s3_env):
    """A fresh, empty bucket: 's3://name'."""
    from dldriver.storage.s3 import S3Storage

    bucket = unique_name("t")
    S3Storage(bucket).create_bucket()
    return f"s3://{bucket}"


@pytest.fixture
def az_uri(azure_env):
    """A fresh, empty container: 'az://name'."""
    from dldriver.storage.azure import AzureStorage

    container = unique_name("t")
    AzureStorage(container).create_container()
    return f"az://{container}"


class PrivateS3:
    """A SeaweedFS of one test's own, which the test may stop and start again (fault tests).

    `options` are storage_options that point a storage at it without touching os.environ.
    """

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.port = free_port_block(S3_PORT_SPAN)
        self.options = {"endpoint_url": seaweedfs.endpoint(self.port), "access_key_id": seaweedfs.DEV_ACCESS_KEY,
                        "secret_access_key": seaweedfs.DEV_SECRET_KEY, "region": seaweedfs.REGION}

    def start(self) -> dict:
        return _start(services.start_s3, self.state_dir, self.port)

    def stop(self) -> bool:
        return services.stop_s3(self.state_dir)


@pytest.fixture
def private_s3(tmp_path):
    """A started PrivateS3 (its data persists across stop/start), stopped after the test."""
    server = PrivateS3(tmp_path / "private-services")
    server.start()
    try:
        yield server
    finally:
        server.stop()
