"""Rank 0's view of a finished run: DLIO's metrics combined over ranks, our own figures, the files."""
from __future__ import annotations

import logging
import sys
from importlib.metadata import version
from pathlib import Path

from dldriver.config import config_hash, resolved_dict
from dldriver.metrics import caching
from dldriver.metrics import formulas as F
from dldriver.metrics import summary as S
from dldriver.units import GiB

log = logging.getLogger("dldriver")


def _phase_results(workload, record) -> dict:
    """name -> PhaseResult for one rank's epoch ('block<b>' and 'eval')."""
    out_cfg = workload.output
    results = {}
    for name, p in record.phases.items():
        if name == "eval":
            results[name] = F.eval_metrics(p.end - p.start, p.proc, p.compute, workload.reader.batch_size_eval,
                                           out_cfg.exclude_start_steps, out_cfg.exclude_end_steps)
        else:
            results[name] = F.block_metrics(p.end - p.start, p.proc, p.compute, workload.reader.batch_size,
                                            out_cfg.exclude_start_steps, out_cfg.exclude_end_steps)
    return results


def build_report(spec, gathered: list[dict], start: float, end: float, comm_kind: str) -> dict:
    """summary.json, the per-rank files, from every rank's gathered results (rank order)."""
    workload = spec.workload
    ds = workload.dataset
    epochs = workload.train.epochs
    per_rank = [{e: _phase_results(workload, rec) for e, rec in enumerate(r["records"], 1)} for r in gathered]
    train_au, train_tp, eval_au, eval_tp = [], [], [], []
    for e in range(1, epochs + 1):
        blocks = [[res for name, res in rank[e].items() if name != "eval"] for rank in per_rank]
        pairs = [F.rank_epoch(b) for b in blocks]
        train_au.append(F.epoch_au([a for a, _ in pairs]))
        train_tp.append(F.epoch_throughput([t for _, t in pairs]))
        evals = [rank[e]["eval"] for rank in per_rank if "eval" in rank[e]]
        if evals:
            eval_au.append(F.epoch_au([r.au for r in evals]))
            eval_tp.append(F.epoch_throughput([r.throughput for r in evals]))
    saves = _checkpoint_ops(gathered)
    checkpoint_gb = gathered[0]["checkpoint_bytes"] / GiB if saves else None
    metric = S.build_metric(train_au, train_tp, ds.record_length_bytes, workload.metric.au,
                            eval_au if workload.workflow.evaluation else None,
                            eval_tp if workload.workflow.evaluation else None,
                            saves=saves, checkpoint_size_gb=checkpoint_gb)
    hosts = list({r["host"]["hostname"]: r["host"] for r in gathered}.values())
    per_host = -(-spec.ranks // len(hosts))
    size_gb = caching.data_size_per_host_gb(ds.num_files_train, ds.num_samples_per_file,
                                            ds.record_length_bytes, spec.ranks, per_host)
    summary = S.build_summary(
        start=start, end=end, num_accelerators=spec.ranks, num_hosts=len(hosts), hosts=hosts,
        num_files_train=ds.num_files_train, num_files_eval=ds.num_files_eval,
        num_samples_per_file=ds.num_samples_per_file, data_size_per_host_GB=size_gb, epochs=epochs,
        metric=metric, dldriver=_ours(spec, gathered, comm_kind))
    outputs, stats = {}, {}
    for r, rank in zip(gathered, per_rank):
        outputs[r["rank"]] = S.rank_output({e: S.epoch_output(rec.phases, rank[e])
                                            for e, rec in enumerate(r["records"], 1)}, r["host"], size_gb)
        stats[r["rank"]] = {str(e): S.epoch_stats(rec.start, rec.end, rec.phases, _ckpt_spans(rec.checkpoints))
                            for e, rec in enumerate(r["records"], 1)}
    return {"summary": summary, "outputs": outputs, "stats": stats}


def build_checkpoint_report(spec, gathered: list[dict], start: float, end: float, comm_kind: str) -> dict:
    """summary.json and the per-rank files of a checkpoint-only run (engine.checkpointing's records)."""
    workload = spec.workload
    ds = workload.dataset
    saves = combine_ops([r["saves"] for r in gathered])
    loads = combine_ops([r["loads"] for r in gathered])
    total = sum(r["bytes_per_checkpoint"] for r in gathered)
    hosts = list({r["host"]["hostname"]: r["host"] for r in gathered}.values())
    summary = S.build_summary(
        start=start, end=end, num_accelerators=spec.ranks, num_hosts=len(hosts), hosts=hosts,
        num_files_train=ds.num_files_train, num_files_eval=ds.num_files_eval,
        num_samples_per_file=ds.num_samples_per_file, data_size_per_host_GB=0.0, epochs=0,
        metric=S.checkpoint_metric(saves, loads, total / GiB),
        dldriver=_checkpoint_ours(spec, gathered, saves, loads, total, comm_kind))
    outputs = {r["rank"]: S.rank_output({}, r["host"], 0.0) for r in gathered}
    stats = {r["rank"]: {"1": S.epoch_stats(r["start"], r["end"], {}, _ckpt_spans(
        [(f"save_ckpt{i}", op) for i, op in enumerate(r["saves"], 1)]
        + [(f"load_ckpt{i}", op) for i, op in enumerate(r["loads"], 1)]))} for r in gathered}
    return {"summary": summary, "outputs": outputs, "stats": stats}


def _checkpoint_ours(spec, gathered, saves, loads, total: int, comm_kind: str) -> dict:
    """The `dldriver` section of a checkpoint-only run."""
    def ops(combined):
        return [{"seconds": op.seconds, "bytes": op.bytes, "GB_per_second": op.gib_per_second} for op in combined]

    ranks = [{k: v for k, v in r.items() if k != "host"} for r in gathered]
    return {
        "version": version("dldriver"),
        "mode": "checkpoint_only",
        "rank_sync": comm_kind,
        "checkpoint_scale": spec.checkpoint_scale,
        "checkpoint_bytes": total,
        "checkpoint_files": sum(r["files"] for r in gathered),
        "fsync": spec.workload.checkpoint.fsync,
        "drop_caches": gathered[0]["drop_caches"],
        "saves": ops(saves),
        "loads": ops(loads),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in gathered),
        "ranks": ranks,
        "cell": spec.cell,
    }


def combine_ops(per_rank_records: list[list[dict]]) -> list:
    """Per operation i, MLPerf's rule over ranks: the slowest rank's duration, all ranks' bytes."""
    return [F.checkpoint_op([r["duration"] for r in op], [r["bytes"] for r in op])
            for op in zip(*per_rank_records)]


def _checkpoint_ops(gathered) -> list:
    return combine_ops([[rec for e in r["records"] for _, rec in e.checkpoints] for r in gathered])


def _ckpt_spans(checkpoints) -> dict:
    """(name, Checkpointer record) pairs -> name: (start, end, GiB/s) for epoch_stats."""
    return {name: (c["start"], c["end"], c["bytes"] / GiB / c["duration"] if c["duration"] > 0 else 0.0)
            for name, c in checkpoints}


def _ours(spec, gathered, comm_kind) -> dict:
    """The `dldriver` section: what DLIO does not report."""
    workload = spec.workload
    epochs = []
    for e in range(workload.train.epochs):
        recs = [r["records"][e] for r in gathered]
        wall = max(_train_seconds(rec) for rec in recs)
        nbytes = sum(rec.bytes_read for rec in recs)
        epochs.append({"epoch": e + 1, "bytes_read": nbytes, "samples_read": sum(r.samples_read for r in recs),
                       "train_seconds": wall, "true_MB_per_second": F.true_mb_per_second(nbytes, wall),
                       "eval_bytes_read": sum(r.eval_bytes_read for r in recs),
                       "coverage": recs[0].coverage})
    loads = [x for r in gathered for rec in r["records"] for n, p in rec.phases.items() if n != "eval"
             for x in p.load]
    samples = [x for r in gathered for rec in r["records"] for x in rec.sample_seconds]
    total_bytes = sum(e["bytes_read"] for e in epochs)
    total_seconds = sum(e["train_seconds"] for e in epochs)
    return {
        "version": version("dldriver"),
        "loader": workload.reader.data_loader,
        "dataset_uri": spec.dataset.uri,
        "ranks": spec.ranks,
        "rank_sync": comm_kind,
        "steps_per_epoch": spec.steps,
        "eval_steps": spec.eval_steps,
        "bytes_read": total_bytes,
        "true_MB_per_second": F.true_mb_per_second(total_bytes, total_seconds),
        "load_latency_seconds": F.latency_percentiles(loads),
        "sample_read_seconds": F.latency_percentiles(samples),
        "coverage_ok": all(e["coverage"]["ok"] for e in epochs),
        "epochs": epochs,
        "system": gathered[0]["system"],
        "rank_peak_rss_bytes": [r["system"].get("rss_peak_bytes") for r in gathered],
        "drop_caches": spec.drop_caches,
        "versions": gathered[0]["framework"],
        "config_hash": config_hash(workload),
        "config": resolved_dict(workload),
        "manifest": _manifest_summary(spec.dataset.manifest),
        "cell": spec.cell,
    }


def _train_seconds(record) -> float:
    blocks = [p for n, p in record.phases.items() if n != "eval"]
    return blocks[-1].end - blocks[0].start


def _manifest_summary(manifest) -> dict | None:
    """The manifest without its per-file list (which the dataset folder already holds)."""
    if manifest is None:
        return None
    summary = {k: v for k, v in manifest.items() if not isinstance(v, (list, dict))}
    files = manifest.get("files")
    if files is not None:
        summary["files"] = len(files)
    return summary


def write_report(folder: Path, report: dict) -> None:
    S.write_json(folder, "summary.json", report["summary"])
    for rank, data in report["outputs"].items():
        S.write_json(folder, f"{rank}_output.json", data)
    for rank, data in report["stats"].items():
        S.write_json(folder, f"{rank}_per_epoch_stats.json", data)


def print_summary(summary: dict, out: Path) -> None:
    """DLIO's closing lines, on stdout and in dlio.log (not twice on the console)."""
    lines = _summary_lines(summary) + [f"Results: {out}"]
    for line in lines:
        log.info("[METRIC] %s", line, extra={"file_only": True})
        print(line, file=sys.stdout)
    sys.stdout.flush()


def _summary_lines(summary: dict) -> list[str]:
    m = summary["metric"]
    ours = summary["dldriver"]
    lines = [f"Number of Simulated Accelerators: {summary['num_accelerators']}"]
    if "train_au_mean_percentage" in m:
        lines += _train_lines(m, ours)
    if "save_checkpoint_io_mean_GB_per_second" in m:
        lines += [f"Checkpoint size (GB): {m['checkpoint_size_GB']:.4f}",
                  f"Checkpoint save duration (seconds): {m['save_checkpoint_duration_mean_seconds']:.4f}",
                  f"Checkpoint save I/O Throughput (GB/second): {m['save_checkpoint_io_mean_GB_per_second']:.4f}"]
    if "load_checkpoint_io_mean_GB_per_second" in m:
        lines += [f"Checkpoint load duration (seconds): {m['load_checkpoint_duration_mean_seconds']:.4f}",
                  f"Checkpoint load I/O Throughput (GB/second): {m['load_checkpoint_io_mean_GB_per_second']:.4f}"]
    return lines


def _train_lines(m: dict, ours: dict) -> list[str]:
    lines = [
        f"Training Accelerator Utilization [AU] (%): {m['train_au_mean_percentage']:.4f} "
        f"({m['train_au_stdev_percentage']:.4f})",
        f"Training Throughput (samples/second): {m['train_throughput_mean_samples_per_second']:.4f} "
        f"({m['train_throughput_stdev_samples_per_second']:.4f})",
        f"Training I/O Throughput (MB/second): {m['train_io_mean_MB_per_second']:.4f} "
        f"({m['train_io_stdev_MB_per_second']:.4f})",
        f"train_au_meet_expectation: {m['train_au_meet_expectation']}",
    ]
    if "eval_au_mean_percentage" in m:
        lines += [f"Eval Accelerator Utilization [AU] (%): {m['eval_au_mean_percentage']:.4f}",
                  f"Eval Throughput (samples/second): {m['eval_throughput_mean_samples_per_second']:.4f}"]
    return lines + [f"Bytes read: {ours['bytes_read']} ({ours['true_MB_per_second']:.2f} MB/second read)",
                    f"Coverage: {'every sample read exactly once per epoch' if ours['coverage_ok'] else 'FAILED'}"]
