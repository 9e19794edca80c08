"""What the HTML report opens with: per workload the AU verdict, the accelerator figure with the MLPerf rules
verdict on it, AU and samples/s over its runs, and any regression against the baseline; then the checkpoint
figures in their own table.

Column names here are for people (with units); cells.csv, cells.md and runs.csv keep the field names.
"""
from __future__ import annotations

import json
from pathlib import Path

from dldriver.mlperf.rules import RULE_TITLES

# Field name -> the column's name in the HTML report.
LABELS = {
    "workload": "Workload", "loader": "Loader", "backend": "Storage", "ranks": "Accelerators", "runs": "Runs",
    "samples_per_second_mean": "Samples/s", "samples_per_second_cv": "Samples/s CV",
    "au_percentage_mean": "AU (%)", "au_threshold_percentage": "AU floor (%)",
    "au_meet_expectation": "AU verdict", "mb_per_second_mean": "Read (MB/s, DLIO)",
    "true_mb_per_second_mean": "Read (MB/s, bytes fetched)", "load_latency_p99_s_mean": "Load p99 (s)",
    "save_gb_per_second_mean": "Checkpoint write (GB/s)", "load_gb_per_second_mean": "Checkpoint read (GB/s)",
    "status": "Against baseline", "metric": "Metric", "baseline": "Baseline", "current": "Now",
    "change": "Change", "config_changed": "Config changed", "detail": "Detail",
    "accelerators": "Accelerators the storage feeds", "verdict": "AU verdict", "regression": "Against baseline",
    "rules_verdict": "MLPerf rules verdict",
}
CHECKPOINT_VIEW = ("workload", "backend", "ranks", "runs", "save_gb_per_second_mean", "load_gb_per_second_mean")
SEARCH_PREFIX = "search_"
HEADLINE_VIEW = ("workload", "verdict", "accelerators", "rules_verdict", "au_percentage_mean",
                 "samples_per_second_mean", "regression")
VERDICT_FILE = "verdict.json"       # beside search.json (rules/mlperf.smk, rule mlperf_verdict)



def searches(results: Path) -> dict[str, dict]:
    """Workload name -> the search.json of each finished accelerator search under the matrix folder."""
    found = {}
    for path in sorted(Path(results).glob("search_*/search.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        data["folder"] = path.parent.name
        data["rules_verdict"] = _verdict_of(path.parent / VERDICT_FILE, data)
        found[data.get("workload") or path.parent.name[len("search_"):]] = data
    return found


def _verdict_of(path: Path, search: dict) -> dict | None:
    """The search's verdict.json, if it judged this result's count (else it is left from an earlier one)."""
    try:
        verdict = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    tried = [int(c) for c in search.get("results") or {}]
    judged = search.get("best_per_host") or (min(tried) if tried else None)
    return verdict if verdict.get("accelerators_per_host") == judged else None


def rules_verdict_words(verdict: dict | None) -> str:
    """e.g. "INVALID: dataset smaller than the rules ask (trainingRecalculateDatasetSize)": the division,
    then each rule that kept it from CLOSED, in words and by id."""
    if not verdict:
        return "not judged"
    failed = failed_rules(verdict)
    if not failed:
        return verdict["division"]
    return verdict["division"] + ": " + "; ".join(f"{RULE_TITLES.get(r, r)} ({r})" for r in failed)


def failed_rules(verdict: dict) -> list[str]:
    """The ids of the findings that leave OPEN or INVALID, once each, in the verdict's order."""
    return list(dict.fromkeys(f["rule"] for f in verdict.get("findings", []) if f["division"] != "CLOSED"))


def rules_verdict_rows(found_searches: dict) -> list[dict]:
    """rules_verdicts.csv: per search its verdict, the failed rule ids and the same in words."""
    rows = []
    for workload, search in sorted(found_searches.items()):
        v = search.get("rules_verdict")
        rows.append({"workload": workload, "search": search["folder"][len(SEARCH_PREFIX):],
                     "accelerators_per_host": v["accelerators_per_host"] if v else "",
                     "edition": v["edition"] if v else "", "division": v["division"] if v else "",
                     "failed_rules": " ".join(failed_rules(v)) if v else "", "in_words": rules_verdict_words(v),
                     "runs": len(v.get("runs", [])) if v else ""})
    return rows


def is_checkpoint(cell: dict) -> bool:
    return cell.get("loader") == "checkpoint"


def is_search(cell: dict) -> bool:
    """A search's cells sit under search_<name>/ in the workload's place (rules/mlperf.smk)."""
    return str(cell.get("workload", "")).startswith(SEARCH_PREFIX)


def headline_rows(cells: list, verdicts: list | None, found_searches: dict) -> list[dict]:
    """One row per training workload: AU verdict over all its cells, the search's figure, AU and
    samples/s (the range over its cells), and the worst baseline status."""
    rows = []
    for workload in sorted({c["workload"] for c in cells if not is_checkpoint(c) and not is_search(c)}):
        mine = [c for c in cells if c["workload"] == workload and not is_checkpoint(c)]
        verdicts_of = [v for v in verdicts or [] if v["workload"] == workload]
        rows.append({
            "workload": workload,
            "verdict": _worst([c.get("au_meet_expectation") for c in mine], ("fail", "success")),
            "accelerators": _search_figure(found_searches.get(workload)),
            "rules_verdict": _rules_verdict(found_searches.get(workload)),
            "au_percentage_mean": _span([c.get("au_percentage_mean") for c in mine], "{:.1f}"),
            "samples_per_second_mean": _span([c.get("samples_per_second_mean") for c in mine], "{:,.0f}"),
            "regression": _worst([v.get("status") for v in verdicts_of], ("fail", "missing", "new", "pass"))
            if verdicts is not None else "no baseline",
        })
    return rows


def search_only_rows(cells: list, found_searches: dict) -> list[dict]:
    """Searches whose workload ran no matrix cell get a row of their own, with AU and samples/s over the
    search's cells."""
    matrix = {c["workload"] for c in cells if not is_search(c)}
    rows = []
    for workload, search in sorted(found_searches.items()):
        if workload in matrix:
            continue
        mine = [c for c in cells if c["workload"] == search["folder"]]
        rows.append({"workload": workload, "verdict": "", "accelerators": _search_figure(search),
                     "rules_verdict": _rules_verdict(search),
                     "au_percentage_mean": _span([c.get("au_percentage_mean") for c in mine], "{:.1f}"),
                     "samples_per_second_mean": _span([c.get("samples_per_second_mean") for c in mine],
                                                      "{:,.0f}"),
                     "regression": ""})
    return rows


def _search_figure(search: dict | None) -> str:
    return search["sentence"].split(": ", 1)[-1] if search else "not searched"


def _rules_verdict(search: dict | None) -> str:
    return rules_verdict_words(search.get("rules_verdict")) if search else ""


def _worst(values, order) -> str:
    present = [v for v in values if v]
    for value in order:
        if value in present:
            return value
    return ""


def _span(values, form: str) -> str:
    nums = sorted(float(v) for v in values if isinstance(v, (int, float)))
    if not nums:
        return ""
    low, high = form.format(nums[0]), form.format(nums[-1])
    return low if low == high else f"{low} to {high}"
