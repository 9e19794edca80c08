"""What the host did during a run: a psutil sampler in a background thread, and DLIO's host facts."""
from __future__ import annotations

import platform
import socket
import threading
import time
from typing import Optional

import psutil

from dldriver.units import GiB



def _proc_dict(path: str) -> dict[str, str]:
    # DLIO's summary keeps /proc/cpuinfo and /proc/meminfo as flat "key: value" dicts (later CPUs
    # overwrite earlier ones, so cpuinfo holds the last processor's lines).
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in lines if line.count(":") == 1)
    return {k.strip(): v.strip() for k, v in pairs if k.strip() != "processor"}


def host_info() -> dict:
    """This host's entries of DLIO's summary (lists over hosts are built by the caller)."""
    cpuinfo = _proc_dict("/proc/cpuinfo")
    return {
        "hostname": socket.gethostname(),
        "host_cpu_count": psutil.cpu_count(),
        # platform.processor() is DLIO's source but is often empty on Linux; cpuinfo names the CPU.
        "host_processor_name": platform.processor() or cpuinfo.get("model name", ""),
        "host_cpuinfo": cpuinfo,
        "host_meminfo": _proc_dict("/proc/meminfo"),
        "host_memory_GB": psutil.virtual_memory().total / GiB,
    }


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass  # a loader worker that ended between listing and reading
    return total


def _io_totals() -> tuple[int, int, int, int]:
    disk = psutil.disk_io_counters()
    net = psutil.net_io_counters()
    return (disk.read_bytes if disk else 0, disk.write_bytes if disk else 0,
            net.bytes_recv if net else 0, net.bytes_sent if net else 0)


class SystemSampler:
    """Samples host CPU %, the RSS of this process and its children, disk and network counters.

    Use as a context manager or call start() and stop(); stop() returns the summary figures.
    """

    def __init__(self, interval: float = 0.5, pid: Optional[int] = None):
        self.interval = interval
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._cpu: list[float] = []
        self._rss: list[int] = []
        self.summary: dict = {}

    def start(self) -> "SystemSampler":
        psutil.cpu_percent(None)  # the first call only sets the baseline
        self._t0, self._io0 = time.monotonic(), _io_totals()
        self._rss.append(_tree_rss(self._proc))
        self._thread = threading.Thread(target=self._loop, name="dldriver-system", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._cpu.append(psutil.cpu_percent(None))
            self._rss.append(_tree_rss(self._proc))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        seconds = time.monotonic() - self._t0
        deltas = [b - a for a, b in zip(self._io0, _io_totals())]
        self._rss.append(_tree_rss(self._proc))
        cpu = self._cpu or [psutil.cpu_percent(None)]
        self.summary = {
            "seconds": seconds,
            "samples": len(self._cpu),
            "cpu_percent_mean": sum(cpu) / len(cpu),
            "cpu_percent_max": max(cpu),
            "rss_mean_bytes": sum(self._rss) / len(self._rss),
            "rss_peak_bytes": max(self._rss),
            "disk_read_bytes": deltas[0],
            "disk_write_bytes": deltas[1],
            "net_recv_bytes": deltas[2],
            "net_sent_bytes": deltas[3],
        }
        return self.summary

    def __enter__(self) -> "SystemSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
