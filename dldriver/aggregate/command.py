"""`dldriver aggregate`: a matrix's runs -> tables, plots, report, and verdicts against a baseline."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

from dldriver.aggregate import headline, plots, tables
from dldriver.aggregate.collect import collect, fill_latency
from dldriver.aggregate.stats import cell_table
from dldriver.aggregate.verdict import baseline_row_problem, compare, parse_tolerance, regressed
from dldriver.errors import DlDriverError
from dldriver.outputs import REPORT_MARKER, check_report_folder, write_marker


def _plans(results: Path) -> dict:
    """workload -> its plan.json (written by the workflow's validate step), where present."""
    plans = {}
    for path in results.glob("*/plan.json"):
        try:
            plans[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return plans


def aggregate_command(results, out=None, baseline=None, tolerance="5%", save_baseline=None) -> int:
    """Write runs.csv/.parquet, cells.csv/.md, plots/*.png and report.html under `out` (default
    RESULTS/report); with `baseline`, also verdicts.csv/.md. Returns 1 on any regression, else 0."""
    results = Path(results)
    if not results.is_dir():
        raise DlDriverError(f"{results}: no such results folder")
    out = check_report_folder(out if out else results / "report")
    if save_baseline and Path(save_baseline).is_dir():
        raise DlDriverError(f"--save-baseline {save_baseline}: is a folder; name the baseline file (NAME.csv)")
    tol = parse_tolerance(tolerance)
    reference = _read_baseline(Path(baseline)) if baseline else None
    found = collect(results, _plans(results))
    for note in found.notes:
        print(f"aggregate: {note}", file=sys.stderr)
    if not found.rows:
        raise DlDriverError(f"{results}: no complete run found (looked for "
                            "<workload>/<loader>/<backend>/r<N>/rep<k>/summary.json)")
    for row in found.rows:
        fill_latency(row, found.load_seconds[row["folder"]])
    cells = cell_table(found.rows)

    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, REPORT_MARKER, "report")
    tables.write_csv(found.rows, out / "runs.csv")
    tables.write_parquet(found.rows, out / "runs.parquet")
    tables.write_csv(cells, out / "cells.csv")
    (out / "cells.md").write_text(tables.markdown(cells, tables.CELL_VIEW))
    figures = plots.all_plots(found.rows, cells, found.load_seconds, out / "plots")

    verdicts = None
    if reference is not None:
        verdicts = compare(cells, reference, tol)
        tables.write_csv(verdicts, out / "verdicts.csv")
        (out / "verdicts.md").write_text(tables.markdown(verdicts, tables.VERDICT_VIEW))
    title = f"dl-driver results: {results.name}"
    found_searches = headline.searches(results)
    top = headline.headline_rows(cells, verdicts, found_searches) + headline.search_only_rows(cells, found_searches)
    if found_searches:
        tables.write_csv(headline.rules_verdict_rows(found_searches), out / "rules_verdicts.csv")
    (out / "report.html").write_text(tables.html_report(title, cells, found.rows, figures, verdicts, found.notes,
                                                        headline=top))
    if save_baseline:
        target = Path(save_baseline)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "cells.csv", target)
        print(f"aggregate: baseline saved to {target}")

    print(f"aggregate: {len(found.rows)} runs in {len(cells)} cells -> {out}/"
          f" (runs.csv, cells.csv, cells.md, report.html, plots/)")
    return _verdict_exit(verdicts, baseline, tol, out)


def _read_baseline(path: Path) -> list:
    if not path.is_file():
        raise DlDriverError(f"{path}: no such baseline file")
    try:
        rows = tables.read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DlDriverError(f"{path}: not a baseline table, unreadable as CSV text ({err}); "
                            "save one with --save-baseline") from None
    if not rows or not {"workload", "loader", "backend", "ranks"} <= set(rows[0]):
        raise DlDriverError(f"{path}: not a baseline table (save one with --save-baseline)")
    for line, row in enumerate(rows, 2):
        problem = baseline_row_problem(row)
        if problem:
            raise DlDriverError(f"{path}:{line}: {problem}")
    return rows


def _verdict_exit(verdicts, baseline, tol: float, out: Path) -> int:
    if verdicts is None:
        return 0
    counts = {s: sum(v["status"] == s for v in verdicts) for s in ("pass", "fail", "new", "missing")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"aggregate: against {baseline} (tolerance {tol:.1%}): {summary} -> {out}/verdicts.md")
    for v in verdicts:
        if v["status"] == "fail":
            print(f"aggregate: REGRESSION {v['workload']}/{v['loader']}/{v['backend']}/r{v['ranks']}: "
                  f"{v['detail']}", file=sys.stderr)
    return 1 if regressed(verdicts) else 0
