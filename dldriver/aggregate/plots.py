"""The report's figures as PNG files (matplotlib, Agg: no display needed).

Each function returns the file it wrote, or None when the results hold nothing to plot.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def _grid(n: int, width: float = 5.0, height: float = 3.6):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _grouped_bars(ax, cells, group_key, bar_key, value, error=None):
    groups = sorted({c[group_key] for c in cells})
    bars = sorted({c[bar_key] for c in cells})
    width = 0.8 / max(len(bars), 1)
    for i, bar in enumerate(bars):
        xs, ys, es = [], [], []
        for j, group in enumerate(groups):
            match = [c for c in cells if c[group_key] == group and c[bar_key] == bar]
            if match and match[0].get(value) is not None:
                xs.append(j + (i - (len(bars) - 1) / 2) * width)
                ys.append(match[0][value])
                es.append((match[0].get(error) or 0) if error else 0)
        ax.bar(xs, ys, width, yerr=es if error else None, label=str(bar), capsize=2)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.legend(fontsize=7)


def _grouped(cells: list) -> list:
    """Cells with a `group` label: the backend, plus the rank count when a workload has several."""
    ranks = {}
    for c in cells:
        ranks.setdefault(c["workload"], set()).add(c["ranks"])
    return [c | {"group": c["backend"] if len(ranks[c["workload"]]) == 1 else f"{c['backend']}/r{c['ranks']}"}
            for c in cells]


def _train_panels(cells: list, value: str):
    """A figure with one panel per training workload that has `value`, and each panel's grouped cells."""
    train = [c for c in cells if c["mode"] == "train" and c.get(value) is not None]
    workloads = sorted({c["workload"] for c in train})
    if not workloads:
        return None
    fig, axes = _grid(len(workloads))
    return fig, [(ax, w, _grouped([c for c in train if c["workload"] == w])) for ax, w in zip(axes, workloads)]


def throughput(cells: list, out: Path):
    """Samples/s by backend (groups) and loader (bars), one panel per training workload."""
    panels = _train_panels(cells, "samples_per_second_mean")
    if panels is None:
        return None
    fig, rows = panels
    for ax, workload, mine in rows:
        _grouped_bars(ax, mine, "group", "loader", "samples_per_second_mean", "samples_per_second_stdev")
        ax.set_title(f"{workload}: throughput")
        ax.set_ylabel("samples/s (mean ± stdev)")
    return _save(fig, out / "throughput.png")


def au(cells: list, out: Path):
    """AU % per cell against the workload's metric.au threshold (dashed line)."""
    panels = _train_panels(cells, "au_percentage_mean")
    if panels is None:
        return None
    fig, rows = panels
    for ax, workload, mine in rows:
        _grouped_bars(ax, mine, "group", "loader", "au_percentage_mean", "au_percentage_stdev")
        threshold = mine[0].get("au_threshold_percentage")
        if threshold is not None:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1)
            ax.text(0.01, threshold, f" metric.au {threshold:g}%", color="red", fontsize=7,
                    va="bottom", transform=ax.get_yaxis_transform())
        ax.set_ylim(0, 105)
        ax.set_title(f"{workload}: accelerator utilisation")
        ax.set_ylabel("AU %")
    return _save(fig, out / "au.png")


def latency(rows: list, load_seconds: dict, out: Path):
    """Distribution of per-step load (batch wait) times per cell, all repetitions and ranks pooled."""
    pooled: dict = {}
    for row in rows:
        times = load_seconds.get(row["folder"]) or []
        if row["mode"] == "train" and times:
            label = f"{row['workload']}/{row['loader']}/{row['backend']}/r{row['ranks']}"
            pooled.setdefault(row["workload"], {}).setdefault(label, []).extend(t * 1000 for t in times)
    if not pooled:
        return None
    fig, axes = _grid(len(pooled), width=6.0, height=0.3 * max(len(v) for v in pooled.values()) + 1.5)
    for ax, (workload, cells) in zip(axes, sorted(pooled.items())):
        labels = sorted(cells)
        ax.boxplot([cells[k] for k in labels], orientation="horizontal", showfliers=True)
        ax.set_yticks(range(1, len(labels) + 1), [k.split("/", 1)[1] for k in labels], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("load time per step (ms, log)")
        ax.set_title(f"{workload}: load latency")
    return _save(fig, out / "latency.png")


def checkpoint(cells: list, out: Path):
    """Checkpoint save and load GB/s by backend, one panel per checkpoint workload."""
    ckpt = [c for c in cells if c.get("save_gb_per_second_mean") is not None
            or c.get("load_gb_per_second_mean") is not None]
    workloads = sorted({c["workload"] for c in ckpt})
    if not workloads:
        return None
    fig, axes = _grid(len(workloads))
    for ax, workload in zip(axes, workloads):
        mine = _grouped([c for c in ckpt if c["workload"] == workload])
        flat = [{"group": c["group"], "op": op, "v": c.get(f"{op}_gb_per_second_mean"),
                 "e": c.get(f"{op}_gb_per_second_stdev")} for c in mine for op in ("save", "load")]
        _grouped_bars(ax, flat, "group", "op", "v", "e")
        ax.set_title(f"{workload}: checkpoint bandwidth")
        ax.set_ylabel("GB/s (mean ± stdev)")
    return _save(fig, out / "checkpoint.png")


def all_plots(rows: list, cells: list, load_seconds: dict, out: Path) -> list:
    out.mkdir(parents=True, exist_ok=True)
    made = [throughput(cells, out), au(cells, out), latency(rows, load_seconds, out), checkpoint(cells, out)]
    return [p for p in made if p is not None]
