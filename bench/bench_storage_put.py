"""Upload throughput of dl-driver's S3 and Azure put() against a plain SDK upload loop.

Both sides upload the same random objects with the same number of threads into fresh buckets /
containers; the ratio ours/plain should be at least 0.9 (issue 3). The servers are those named by the
environment (AWS_ENDPOINT_URL, AZURE_STORAGE_CONNECTION_STRING); without them, local SeaweedFS and
Azurite are started on free ports in a temporary folder and stopped afterwards.

    .venv/bin/python bench/bench_storage_put.py [--backend s3|azure|all] [--objects 32] [--size-mib 4] [--threads 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from dldriver import services
from dldriver.services.process import free_port_block
from dldriver.services.seaweedfs import PORT_SPAN
from dldriver.storage import open_storage


def plain_s3(threads: int):
    """A plain boto3 client with the settings of dl-driver's: path-style, no checksums and no SHA-256 of
    the body (which a default client computes on every PUT: the comparison is of the upload path, not of
    those settings)."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(
        max_pool_connections=threads, s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required", response_checksum_validation="when_required"))
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return lambda key, data: client.put_object(Bucket=bucket, Key=key, Body=data)


def plain_azure(threads: int):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    container = service.create_container(f"plain-{uuid.uuid4().hex[:12]}")
    return lambda key, data: container.upload_blob(key, data, overwrite=True)


def ours(scheme: str, threads: int):
    storage = open_storage(f"{scheme}://ours-{uuid.uuid4().hex[:12]}", threads=threads)
    storage.put("warm-up", b"")  # creates the bucket / container outside the timed loop
    return storage.put


def timed(put, objects: list[bytes], threads: int) -> float:
    """MB/s of uploading every object once with `threads` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: put(f"train/obj_{i:05d}.bin", objects[i]), range(len(objects))))
    return sum(map(len, objects)) / (time.perf_counter() - start) / 1e6


def ensure_servers(stack: ExitStack, backends: list[str]) -> None:
    state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-services-")))
    if "s3" in backends and not os.environ.get("AWS_ENDPOINT_URL"):
        os.environ.update(services.start_s3(state, port=free_port_block(PORT_SPAN), attached=True))
        stack.callback(services.stop_s3, state)
    if "azure" in backends and not os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
        os.environ.update(services.start_azure(state, port=free_port_block(1), attached=True))
        stack.callback(services.stop_azure, state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["s3", "azure", "all"], default="all")
    parser.add_argument("--objects", type=int, default=32)
    parser.add_argument("--size-mib", type=float, default=4)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    backends = ["s3", "azure"] if args.backend == "all" else [args.backend]
    objects = [os.urandom(int(args.size_mib * (1 << 20))) for _ in range(args.objects)]
    with ExitStack() as stack:
        ensure_servers(stack, backends)
        for backend in backends:
            plain = plain_s3 if backend == "s3" else plain_azure
            scheme = "s3" if backend == "s3" else "az"
            plain_mbs = timed(plain(args.threads), objects, args.threads)
            ours_mbs = timed(ours(scheme, args.threads), objects, args.threads)
            print(f"{backend}: {args.objects} x {args.size_mib:g} MiB, {args.threads} threads: "
                  f"plain SDK {plain_mbs:.1f} MB/s, dl-driver put {ours_mbs:.1f} MB/s, "
                  f"ratio {ours_mbs / plain_mbs:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
