"""Tables as CSV, Parquet and Markdown, and one self-contained HTML report (plots inlined as base64)."""
from __future__ import annotations

import base64
import csv
import html
from datetime import datetime
from pathlib import Path

from dldriver.aggregate.headline import CHECKPOINT_VIEW, HEADLINE_VIEW, LABELS, is_checkpoint

# Columns of cells.md and the HTML cell table: the keys and the figures people read first
# (cells.csv keeps every statistic).
CELL_VIEW = ("workload", "loader", "backend", "ranks", "runs", "samples_per_second_mean",
             "samples_per_second_cv", "au_percentage_mean", "au_threshold_percentage",
             "au_meet_expectation", "mb_per_second_mean", "true_mb_per_second_mean",
             "load_latency_p99_s_mean", "save_gb_per_second_mean", "load_gb_per_second_mean")
VERDICT_VIEW = ("workload", "loader", "backend", "ranks", "status", "metric", "baseline", "current",
                "change", "au_meet_expectation", "config_changed", "detail")


def columns(rows: list) -> list:
    """Every key of every row, in first-seen order."""
    seen: dict = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_csv(rows: list, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(rows))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return path


def read_csv(path: Path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_parquet(rows: list, path: Path) -> Path:
    import pandas as pd

    pd.DataFrame(rows, columns=columns(rows)).to_parquet(path, index=False)
    return path


def fmt(value) -> str:
    """A table cell: floats to 4 significant digits, the change as a signed percentage."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _view(rows: list, view) -> tuple[list, list]:
    cols = [c for c in view if any(row.get(c) not in (None, "") for row in rows)] or list(view[:4])
    body = [[fmt(_pct(c, row.get(c))) for c in cols] for row in rows]
    return cols, body


def _pct(column: str, value):
    return f"{value:+.1%}" if column == "change" and isinstance(value, float) else value


def markdown(rows: list, view) -> str:
    cols, body = _view(rows, view)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
    return "\n".join(lines) + "\n"


def html_table(rows: list, view, labels: dict | None = None) -> str:
    """The rows as a table; `labels` names the columns for people (field names otherwise)."""
    cols, body = _view(rows, view)
    head = "".join(f"<th>{html.escape((labels or {}).get(c, c))}</th>" for c in cols)
    trs = []
    for line in body:
        tds = "".join(f'<td class="{_css(cell)}">{html.escape(cell)}</td>' for cell in line)
        trs.append(f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def _css(cell: str) -> str:
    """Colour by status; a rules verdict ("INVALID: ...") by its division."""
    division = {"INVALID": "bad", "OPEN": "warn", "CLOSED": "good"}.get(cell.split(":", 1)[0], "")
    return {"fail": "bad", "success": "good", "pass": "good", "missing": "warn", "new": "warn"}.get(cell, division)


STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:12px;
margin-bottom:2em}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}
td:nth-child(-n+4){text-align:left}.bad{background:#f8d0d0}.good{background:#d6f0d6}.warn{background:#fff1c2}
img{max-width:100%;border:1px solid #ddd;margin-bottom:1.5em}"""


def html_report(title: str, cells: list, runs: list, plots: list, verdicts: list | None,
                notes: list, headline: list | None = None) -> str:
    """One file with everything inline, readable offline and attachable to a release: the headline per
    workload first, then the baseline verdict, the checkpoint figures, every cell, the plots."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(runs)} runs in {len(cells)} cells, aggregated {datetime.now():%Y-%m-%d %H:%M}.</p>"]
    if headline:
        parts += ["<h2>Per workload</h2>", html_table(headline, HEADLINE_VIEW, LABELS)]
    if verdicts is not None:
        parts += ["<h2>Release verdict against the baseline</h2>", html_table(verdicts, VERDICT_VIEW, LABELS)]
    checkpoints = [c for c in cells if is_checkpoint(c)]
    if checkpoints:
        parts += ["<h2>Checkpoints (mean over repetitions)</h2>", html_table(checkpoints, CHECKPOINT_VIEW, LABELS)]
    parts += ["<h2>Every cell (mean over repetitions)</h2>", html_table(cells, CELL_VIEW, LABELS)]
    for plot in plots:
        data = base64.b64encode(Path(plot).read_bytes()).decode()
        parts.append(f'<h2>{html.escape(Path(plot).stem)}</h2><img alt="{html.escape(Path(plot).stem)}" '
                     f'src="data:image/png;base64,{data}">')
    if notes:
        parts += ["<h2>Not aggregated</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in notes] + ["</ul>"]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
