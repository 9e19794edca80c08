"""Reads from S3 (SeaweedFS) and Azure (Azurite): every loader through `dldriver run` against a plain SDK loop.

One run: local SeaweedFS and Azurite are started through dldriver.services (free ports, a temporary state
folder, stopped at the end). Per store and dataset, dl-driver generates the dataset, then:
- plain: a thread pool of --threads threads over the same objects, one boto3 `get_object(...).read()` /
  azure-storage-blob `download_blob(max_concurrency=1).readall()` per object (whole objects for npz; for
  tfrecord one ranged GET per record, each file's index object read once in the warm-up pass: what
  dl-driver reads, which reads each index once per process, in its first epoch); bytes/s of one pass,
  best of the passes (2, or 3 with --full).
- each loader: `dldriver run` (a subprocess, as a user runs it; pytorch skips tfrecord, which it cannot
  read, as in DLIO) with computation_time 0, batch 4, read_threads --threads, 5 epochs (7 with --full);
  bytes/s = bytes read / train seconds of the best epoch after the first (the first opens clients and
  starts workers, and reads tfrecord's indexes).
The plain loop is measured right before and right after each loader (one loader's "after" is the next
one's "before") and the loader is held to the better of the two (the machine is shared). Both sides take
their best of as many tries: 2 x passes plain passes, 2 x passes epochs after the first (until issue 15's
fourth pass the loader had the best of 2 epochs against the plain loop's best of 4 passes, which favoured
the plain loop, and the plain loop's tfrecord passes read every index again, which favoured dl-driver).
Prints MB/s and the ratio loader / plain (target >= 0.9).

Datasets: 4MiB (192 npz of one 4 MiB sample, 384 with --full: one GET per sample), 128KiB (576 npz of
128 KiB, 1152 with --full: many small GETs) and tfrecord (24 files of 24 records of 128 KiB, 48 with
--full, read by ranges through each file's index object: the tfrecord reader on an object store fetches
a record per ranged GET, never the whole file). Each dataset is written back to disk (os.sync) before
its first pass, so that the kernel's writeback of the store's new files does not land on whichever loader
comes first. Why these sizes (issue 15's sixth pass): with 64 x 4 MiB, 192 x 128 KiB and 8 tfrecord files
an epoch was 0.2-0.5 s, over which one try's spread on 2 shared cores is 10-15 %, and a batch read by one
thread (as DLIO's workers read theirs) leaves threads idle at the epoch's end for up to a batch's time,
a larger share of a short epoch than of a real one; a run of them had 1-4 of 22 cells below 0.9, a
different cell each run. Epochs of 0.6-1.5 s: the default takes 4 min 40 s (one run, idle machine).
Ratios, 3 runs of the default on an otherwise idle machine (two with these settings; one more without
the os.sync), run 1 / 2 / 3: S3 4 MiB native 1.02 / 1.08 / 0.89, pytorch 0.91 / 0.99 / 1.00, tensorflow
0.90 / 0.89 / 0.95, jax 0.99 / 0.82 / 0.98; S3 128 KiB native 1.07 / 1.04 / 1.02, pytorch 1.29 / 1.34 /
1.33, tensorflow 1.01 / 1.00 / 0.98, jax 1.03 / 1.02 / 0.99; S3 tfrecord native 0.99 / 0.98 / 0.95,
tensorflow 0.99 / 1.01 / 0.92, jax 0.98 / 0.94 / 0.99; Azure 4 MiB 0.94 / 0.92 / 1.01, 1.13 / 1.05 /
1.02, 1.05 / 1.06 / 0.92, 1.08 / 1.11 / 0.91; Azure 128 KiB 1.08 / 1.10 / 1.08, 1.47 / 1.36 / 1.39,
1.04 / 1.02 / 1.07, 1.03 / 1.07 / 1.07; Azure tfrecord native 1.02 / 0.95 / 0.95, tensorflow 0.96 /
0.96 / 0.96, jax 1.12 / 1.05 / 1.03. All 22 at or above 0.9 in run 1; the misses (S3 4 MiB) fall on a
different loader each run, where the plain loop's own best of 2 passes moved by up to 14 % between one
loader and the next (1143 and 1308 MB/s in run 2). pytorch's 1.3-1.5 on 128 KiB objects: its 4
workers are processes, each with its own GIL, where the plain loop's 4 threads share one.

SDK settings, the same on both sides (printed at the start): boto3 path-style, max_pool_connections
max(10, threads), no request/response checksums (when_required), no payload signing; azure-storage-blob
with a requests pool of max(10, threads), 1 MiB response read blocks (connection_data_block_size; the
SDK's 4 KiB default halves download speed), max_concurrency 1 per download (one request per object or
range, as both sides make). Where dl-driver's clients differ from the plain loop's (the plain loop is the
SDK as a user calls it; the requests on the wire are the same): botocore's timestamps are parsed
without dateutil (storage/s3.parse_timestamp) and the Azure client's requests session takes proxies from
the environment once (storage/azure.environment_once). Both sides run with the heap settings of
`dldriver run` (dldriver/heap.py: freed buffers kept in the heap), which this process sets for its
plain loop: until issue 15's fourth pass it did not, and glibc's defaults cost the plain loop's Azure
4 MiB downloads about twice the CPU (one thread, 12 alternating chunks of 20, median CPU per object,
one run each: 12.5 ms without, 6.8 ms with; S3 3.4 ms either way), which favoured dl-driver (Azure
4 MiB ratios of 1.2-1.5).

Where the time goes (2 shared cores):
- Per request, the SDK's Python is most of the client's CPU, and with read_threads threads in one
  process it is held under one GIL: on 128 KiB objects a loader's ratio is close to the plain loop's
  CPU per request over dl-driver's. Measured in one process, one thread, 60 alternating chunks of 20
  requests of 128 KiB, median CPU per request (one run each, load average 3-4): boto3's own
  get_object(...).read() 1682 us, dl-driver's get_into with the client as it was 1687 us, with its
  timestamps parsed without dateutil 1552 us (botocore parses a GET's Last-Modified header with dateutil,
  ~0.1-0.2 ms); ranged GETs (tfrecord) 2129 / 2213 / 1966 us. Azure: download_blob().readall() 3142 us,
  dl-driver's get_into before 3120 us, with the environment taken once 2831 us (requests' trust_env
  scans all of os.environ twice per request for proxies: ~0.3 ms); ranged 2863 / 2870 / 2497 us.
  dl-driver's own Python around a request (source, reader, npz head and tail checks, Fill, the storage
  wrapper) is 20-40 us of it. Both sides still pay a BlobClient built per blob on Azure (~140 us) and
  botocore's endpoint resolution per request on S3; avoiding either means reusing the SDKs' private state.
- Both stores here are servers on the same 2 cores: SeaweedFS (Go) takes most of a core per GB/s it
  serves; Azurite is single-threaded JavaScript and is its own ceiling (the plain loop's figure is that
  ceiling: every ratio on Azure is judged against it, not against a network).
- Client CPU comes out of the servers' share. One-sample npz objects are read straight into their
  batch slot (Storage.get_into, after a first file has shown where x's data starts): on S3 from the
  socket by http.client's readinto, under botocore's and urllib3's read(), which hand back a new bytes
  object to be copied once more; on Azure through the downloader's readinto, one copy fewer than
  readall (the SDK still joins each response's chunks itself). Measured in one process with getrusage,
  native loader, 64 x 4 MiB, 4 threads, copy (before) and straight reads alternating, 3 rounds, one run:
  S3 1.13-1.27 CPU-s per GB before, 0.91-0.99 after (the plain loop: ~0.75-1.0); Azure 1.91-2.09
  before, 1.50-1.75 after (plain ~1.2-1.9). On 128 KiB objects the SDK's Python per request is most
  of either side's time.
- tensorflow: batches are read by a pool of read_threads Python threads (the native loader's: the SDK
  releases the GIL while it waits on the socket), read_threads requests in flight, and each batch becomes
  a tf tensor over the same 64-byte aligned memory by DLPack (~60 us, no copy; tensorflow.py). Before
  (issue 15: 0.27-0.45 of the plain loop) one tf.data.Dataset.from_generator per thread ran under a
  parallel interleave: the generators' next() calls went through TensorFlow's py_func and their reads
  did not overlap (tests/test_loaders.py counts the requests in flight). One generator over the pool
  still cost ~0.4-0.6 CPU-s per GB more than native: TensorFlow's first generator iterator sets glibc's
  M_TRIM_THRESHOLD to 128 KiB for the process ("Memory patch applied"), after which every object body
  of 128 KiB or more is a freshly mapped buffer, faulted in a page at a time, on the cores the storage
  server needs. `run` now also keeps freed buffers in the heap (dldriver/heap.py) for every loader.
- tfrecord: a reader lives while one thread reads consecutive records of a file, so a file read in
  batches by 4 threads is opened once per batch; each open cost a HEAD, a GET of the index and another
  HEAD (7 requests for 4 records). The index is now parsed once per file and process (formats/tfrecord.py).
  What remains per record beyond the ranged GET (CRCs, the Example's fields, the copy into the slot) is
  ~0.1 ms of ~2 ms (cProfile, one thread).
- jax: `dldriver run`'s loader puts each batch in the consumer's thread, prefetch_size batches ahead,
  as the JAX API does (loaders/jax.py); it had a putting thread and a queue. jax.device_put on the CPU
  aliases the 64-byte aligned batch (68 us of CPU per 16 MiB batch). In one process, 10 alternating
  epochs, median CPU per object, one run at load average 3-4: S3 4 MiB 4191 us inline, 4221 us with
  the thread (plain 4066); 128 KiB 2512 / 2641 us (plain 2335). jax.device_put itself cost ~0.2-0.45
  ms of CPU per batch when called once per batch (50-80 us in a tight loop; jax.dlpack.from_dlpack,
  jnp.asarray or an explicit device cost the same), under the GIL the reader threads need: `dldriver
  run` on S3 128 KiB, 3 alternating runs each (load average 3-4), best epoch native 59-67 MB/s, jax
  42-56 MB/s. The loader now puts through the JAX API's DevicePut (loaders/device_put.py, issue 13):
  ~100 us per spaced put of a 512 KiB batch against 350-450 us (one run); then 2 alternating runs each
  at load average ~4, best epoch native 40 / 49 MB/s, jax 46 / 46.
  Where the jax run's time goes beyond native's (issue 15, fifth pass; S3 128 KiB, per object after the
  first epoch): the put is ~30-40 us of the consumer thread's CPU per object (jaxlib's batched_device_put,
  50-120 us per batch under the GIL, cold; host buffers of freed arrays are released inside a later put);
  jax's runtime threads use no CPU during an epoch (per-thread /proc figures); the reader threads keep
  3.9 of 4 batches in flight, as native's; collections are 2 gen-0 per epoch for both. In one process
  with jax loaded, 21-24 alternating epochs each over 3 processes: CPU per object native 2242 us, jax
  2260, jax with 1 batch put ahead instead of prefetch_size 2247; median epoch 46.9 / 48.5 / 48.2 MB/s.
  As separate `dldriver run`s (5 alternating rounds of 11 epochs): native 2396 us and 46.7 MB/s (pooled
  medians), jax 2318 us and 45.9 MB/s, native in a process that had imported jax 2326 us and 47.5 MB/s.
- Per epoch, nothing of dl-driver's was found worth removing: the loaders' pools and clients live
  across epochs, an epoch starts by submitting its first batches, the run's system sampler costs
  ~0.9 ms of CPU per 0.5 s. A batch is read by one thread, as DLIO's workers read theirs, which can leave
  threads idle at an epoch's end for up to a batch's time; reading runs of samples as separate tasks
  instead (as tf.data's parallel map would) was tried and showed no gain (S3 4 MiB, native, in one
  process, 8 and 10 alternating epochs, load 3-5: CPU and wall within the noise), so it was not kept.
- pytorch's workers are read_threads processes, each with its own client (made in the first epoch,
  ~0.1-0.3 s each, which the figures exclude), on 2 cores shared with the server. A worker reads a
  batch straight into its slot of a shared-memory ring and sends back only the slot's number (no
  batch is pickled), and its samples one after another, as DLIO's workers do (read_threads workers:
  read_threads requests in flight, as the plain loop's threads). Profiled (cProfile on the CPU clock
  in each worker, 192 x 128 KiB from SeaweedFS): ~90 % of a worker's CPU is inside boto3's
  get_object, the rest in dl-driver's source and reader; its CPU outside the batch reads is 2-4 %;
  the main process spends ~0.04 CPU-s per GB. The same reads in a forked process cost what they cost
  in the parent (0.9-1.0 CPU-s per GB on S3, 1.4-1.9 on Azure). What remains is 4 runnable Python
  processes where the other loaders have one (their threads share a GIL), on the 2 cores the servers
  need (Azurite is one JavaScript thread): pytorch's ratio moves most between runs, 0.45-0.98 on S3
  4 MiB in one afternoon's runs.

--baseline DIR also runs every loader from another checkout (e.g. `git archive main | tar -x -C DIR`)
right after this one's, against the same plain passes: a change's before and after in one run.

    .venv/bin/python bench/bench_object_reads.py [--backend s3|azure|all] [--threads 4] [--loaders ...] [--full]
        [--baseline DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml
from bench_storage_put import ensure_servers

from dldriver.config import load_workload
from dldriver.generate import generate_dataset
from dldriver.heap import keep_freed_buffers

MiB = 1 << 20
KiB = 1 << 10
BATCH = 4
TARGET = 0.9
LOADERS = ("native", "pytorch", "tensorflow", "jax")
# name -> (format, samples per file, bytes per sample)
DATASETS = {"4MiB": ("npz", 1, 4 * MiB), "128KiB": ("npz", 1, 128 * KiB), "tfrecord": ("tfrecord", 24, 128 * KiB)}


@dataclass(frozen=True)
class Size:
    """How much one run reads: files per dataset, the loader's epochs, the plain loop's passes."""

    files: dict
    epochs: int
    passes: int


# quick (the default): a few minutes on 2 shared cores; --full: the larger datasets and more repeats.
# A loader's best epoch after the first is held to the best plain pass of the passes before and after it:
# as many epochs after the first as plain passes on both sides (2 x passes), so that neither side's
# best is taken over more tries (best of 4 passes against best of 2 epochs would favour the plain loop
# by the spread of a try on a shared machine).
SIZES = {"quick": Size({"4MiB": 192, "128KiB": 576, "tfrecord": 24}, epochs=1 + 2 * 2, passes=2),
         "full": Size({"4MiB": 384, "128KiB": 1152, "tfrecord": 48}, epochs=1 + 2 * 3, passes=3)}
AZURE_READ_BLOCK = 1 * MiB


def workload_doc(uri: str, dataset: str, loader: str, threads: int, size: Size) -> dict:
    fmt, samples, record = DATASETS[dataset]
    framework = "tensorflow" if loader == "tensorflow" or fmt == "tfrecord" else "pytorch"
    return {"model": {"name": f"bench-{dataset}"}, "framework": framework, "workflow": {"train": True},
            "dataset": {"data_folder": uri, "format": fmt, "num_files_train": size.files[dataset],
                        "num_samples_per_file": samples, "record_length_bytes": record},
            "reader": {"data_loader": loader, "batch_size": BATCH, "read_threads": threads,
                       "prefetch_size": 2 * threads, "pin_memory": False},
            "train": {"epochs": size.epochs, "computation_time": 0}}


# -- the plain SDK loops --------------------------------------------------------------------------

def plain_s3_get(threads: int, bucket: str):
    """One boto3 GET (whole, or a byte range), with the SDK settings of dl-driver's client: path-style,
    max(10, threads) pooled connections, no checksums or signing of the payload. bench_frameworks.py's
    plain loop uses it too."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(
        max_pool_connections=max(10, threads), s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required", response_checksum_validation="when_required"))

    def get(key, rng=None):
        kwargs = {"Range": f"bytes={rng[0]}-{rng[0] + rng[1] - 1}"} if rng else {}
        return client.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
    return get


def plain_azure_get(threads: int, container: str):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"], connection_data_block_size=AZURE_READ_BLOCK)
    # The requests pool the SDK makes holds 10 connections, as many as ours for up to 10 threads.
    client = service.get_container_client(container)

    def get(key, rng=None):
        kwargs = {"offset": rng[0], "length": rng[1]} if rng else {}
        return client.get_blob_client(key).download_blob(max_concurrency=1, **kwargs).readall()
    return get


def plain_requests(storage, dataset: str, prefix: str) -> tuple[list, list]:
    """(key, range or None) of the requests of the plain loop's warm-up and of each timed pass, in the
    dataset's order. tfrecord: each file's index object is read in the warm-up only, one ranged GET per
    record in every pass, as dl-driver's reader reads each index once per process (in its first epoch,
    which the figures exclude) and a record per ranged GET."""
    fmt = DATASETS[dataset][0]
    keys = sorted(k for k in storage.list("train/") if k.endswith(f".{fmt}"))
    if fmt != "tfrecord":
        requests = [(prefix + k, None) for k in keys]
        return requests, requests
    indexes, records = [], []
    for k in keys:
        index_key = f"index/{k}.idx"
        indexes.append((prefix + index_key, None))
        offsets = [line.split() for line in storage.get(index_key).decode().splitlines() if line]
        records.extend((prefix + k, (int(o), int(n))) for o, n in offsets)
    return indexes + records, records


def plain_rate(get, requests: list, threads: int) -> float:
    """Bytes/s of one pass over every request with `threads` threads."""
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        total = sum(pool.map(lambda r: len(get(*r)), requests))
        return total / (time.perf_counter() - start)


def best_plain(get, requests, threads, passes: int) -> float:
    return max(plain_rate(get, requests, threads) for _ in range(passes))


# -- dl-driver -------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def loader_rate(cfg: Path, out: Path, checkout: Path = REPO) -> float:
    """Bytes/s of `dldriver run`'s best epoch after the first (its epochs are the plain loop's passes:
    the same statistic on both sides, best of several, on a shared machine), run from `checkout`."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([sys.executable, "-m", "dldriver.cli", "run", str(cfg), "--output", str(out), "--quiet"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    return max(e["bytes_read"] / e["train_seconds"] for e in summary["dldriver"]["epochs"][1:])


def settings_line(threads: int, size: Size) -> str:
    return (f"SDK settings, both sides: boto3 path-style, max_pool_connections {max(10, threads)}, checksums "
            f"when_required (none on GET), no payload signing; azure-storage-blob pool {max(10, threads)}, "
            f"connection_data_block_size {AZURE_READ_BLOCK // MiB} MiB, max_concurrency 1 per download; "
            f"{threads} threads / read_threads, batch {BATCH}, {size.epochs} epochs (first excluded), plain best "
            f"of {size.passes} passes before and after each loader; files {size.files}")


def bench_dataset(backend: str, dataset: str, loaders, threads: int, size: Size, work: Path,
                  baseline: Path | None = None) -> dict:
    from dldriver.storage import open_storage

    scheme = "s3" if backend == "s3" else "az"
    bucket = f"reads-{uuid.uuid4().hex[:10]}"
    uri = f"{scheme}://{bucket}/{dataset}"
    cfg = work / f"{backend}-{dataset}-gen.yaml"
    cfg.write_text(yaml.safe_dump(workload_doc(uri, dataset, "native", threads, size)))
    generate_dataset(load_workload(str(cfg)), processes=2, progress=False)
    # The store's files as generated are dirty pages the kernel writes back within ~30 s: written now,
    # so that no writeback of them runs (on these same 2 cores) during whichever loader comes first.
    os.sync()
    storage = open_storage(uri, threads=threads)
    warm_up, requests = plain_requests(storage, dataset, f"{dataset}/")
    get = (plain_s3_get if backend == "s3" else plain_azure_get)(threads, bucket)
    plain_rate(get, warm_up, threads)  # connections, the server's caches (and tfrecord's indexes)
    row = {}
    after = best_plain(get, requests, threads, size.passes)  # one loader's "after" is the next one's "before"
    checkouts = [("", REPO)] + ([(" (baseline)", baseline)] if baseline else [])
    for loader in loaders:
        if loader == "pytorch" and DATASETS[dataset][0] == "tfrecord":
            continue  # as in DLIO, the pytorch loader does not read tfrecord
        cfg = work / f"{backend}-{dataset}-{loader}.yaml"
        cfg.write_text(yaml.safe_dump(workload_doc(uri, dataset, loader, threads, size)))
        for label, checkout in checkouts:
            before = after
            rate = loader_rate(cfg, work / f"out-{backend}-{dataset}-{loader}{len(label)}", checkout)
            after = best_plain(get, requests, threads, size.passes)
            plain = max(before, after)
            row[loader + label] = {"bytes_per_s": rate, "plain_bytes_per_s": plain, "ratio": rate / plain}
            print(f"{backend} {dataset}: {loader}{label} {rate / 1e6:.0f} MB/s, plain {plain / 1e6:.0f} MB/s, "
                  f"ratio {rate / plain:.2f}{'' if rate / plain >= TARGET else '  (below target)'}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["s3", "azure", "all"], default="all")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--loaders", default=",".join(LOADERS))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--full", action="store_true",
                        help="the larger datasets, 5 epochs and 3 plain passes (about 3x as long as the default)")
    parser.add_argument("--baseline", type=Path,
                        help="another checkout of dl-driver (e.g. `git archive main | tar -x -C DIR`): each loader "
                             "is also run from it, right after this one, against the same plain passes")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    # The plain loop runs in this process with the heap settings `dldriver run` sets in its own (see the
    # header): without them Azure's 4 MiB downloads cost the plain loop about twice the CPU.
    keep_freed_buffers()
    size = SIZES["full" if args.full else "quick"]
    backends = ["s3", "azure"] if args.backend == "all" else [args.backend]
    loaders = args.loaders.split(",")
    print(settings_line(args.threads, size), flush=True)
    results = {}
    with ExitStack() as stack:
        ensure_servers(stack, backends)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-reads-")))
        for backend in backends:
            for dataset in args.datasets.split(","):
                row = bench_dataset(backend, dataset, loaders, args.threads, size, work, args.baseline)
                results[f"{backend}/{dataset}"] = row
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
