"""The accelerator search's arithmetic: which counts to run next, and the sentence its result makes.

A count (emulated accelerators per host) passes when each of its measured runs keeps AU at or above the
workload's floor. The search runs a configured sweep (e.g. 1, 2, 4, 8, 16), then halves the gap between
the largest count that passed below the first that failed and that failure, one count at a time, until
the two are adjacent. AU is taken to fall as accelerators grow: a pass above the first failure does not
move the result (it is reported as such).
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Mapping, Sequence


@dataclass(frozen=True)
class CountResult:
    count: int                      # accelerators per host
    au_percentages: tuple[float, ...]   # one per measured run
    passed: bool

    @property
    def au_mean(self) -> float:
        return fmean(self.au_percentages) if self.au_percentages else 0.0


def count_result(count: int, au_percentages: Sequence[float], floor: float, runs: int) -> CountResult:
    """A count passes when it has `runs` measured runs and every one is at or above floor (a fraction)."""
    aus = tuple(au_percentages)
    return CountResult(count, aus, len(aus) >= runs and all(a >= 100 * floor for a in aus))


def _bounds(results: Mapping[int, CountResult]) -> tuple[int, int | None]:
    """(largest pass below the first failure or 0, the first failure or None)."""
    fails = [c for c, r in results.items() if not r.passed]
    first_fail = min(fails) if fails else None
    passes = [c for c, r in results.items() if r.passed and (first_fail is None or c < first_fail)]
    return (max(passes) if passes else 0), first_fail


def next_counts(sweep: Sequence[int], results: Mapping[int, CountResult]) -> list[int]:
    """The counts to run next: the sweep's untried counts, then one refinement count; [] when done."""
    if not sweep or any(c < 1 for c in sweep):
        raise ValueError(f"a sweep is positive counts, got {list(sweep)}")
    untried = sorted(set(sweep) - set(results))
    if untried:
        return untried
    best, first_fail = _bounds(results)
    step = refinement_count(best, first_fail) if first_fail is not None else None
    return [] if step is None else [step]


def refinement_count(best: int, first_fail: int) -> int | None:
    """The one count between a pass and a failure to try next, or None when they are adjacent."""
    return (best + first_fail) // 2 if first_fail - best > 1 else None


@dataclass(frozen=True)
class SearchResult:
    best: CountResult | None
    first_fail: CountResult | None
    hosts: int

    def sentence(self, workload: str, storage: str) -> str:
        """e.g. "unet3d on s3://bucket: 12 accelerators per host (AU 91.2 % over 5 runs); 13 fail (88.9 %)";
        over several hosts "12 accelerators per host, 24 in total over 2 hosts (AU ...".
        """
        head = f"{workload} on {storage}: "
        over = f" over {self.hosts} hosts" if self.hosts > 1 else ""
        if self.best is None:
            f = self.first_fail
            return head + (f"no count passes; {f.count} per host{over} already fails (AU {f.au_mean:.1f} %)"
                           if f else "nothing measured yet")
        b = self.best
        total = f", {b.count * self.hosts} in total over {self.hosts} hosts" if self.hosts > 1 else ""
        text = (f"{head}{b.count} accelerator{'s' if b.count > 1 else ''} per host{total} "
                f"(AU {b.au_mean:.1f} % over {len(b.au_percentages)} run{'s' if len(b.au_percentages) != 1 else ''})")
        if self.first_fail is None:
            return text + "; no count tried fails"
        return text + f"; {self.first_fail.count} fail ({self.first_fail.au_mean:.1f} %)"


def search_result(results: Mapping[int, CountResult], hosts: int = 1) -> SearchResult:
    best, first_fail = _bounds(results)
    return SearchResult(results.get(best), results.get(first_fail) if first_fail else None, hosts)


def dataset_note(generated: int, required: int) -> str:
    """What the result sentence adds when the dataset is not the size the rules ask for (a scaled demo)."""
    if generated >= required:
        return ""
    return f"; dataset {generated} of the {required} files the MLPerf rules ask for ({100 * generated / required:.2g} %)"
