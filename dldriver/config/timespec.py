"""Time values of DLIO configs (computation_time, eval_time, preprocess_time).

DLIO accepts a number of seconds, or a dict: {mean}, {mean, stdev} (normal), {type: normal, mean, stdev},
{type: uniform, min, max}, {type: gamma, shape, scale}, {type: exponential, scale}, {type: poisson, lam}.
Draws are made per step, made non-negative with abs(), as DLIO does.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

KINDS = {
    "constant": ("mean",),
    "normal": ("mean", "stdev"),
    "uniform": ("min", "max"),
    "gamma": ("shape", "scale"),
    "exponential": ("scale",),
    "poisson": ("lam",),
}


@dataclass(frozen=True)
class TimeSpec:
    type: str = "constant"
    mean: float = 0.0
    stdev: float = 0.0
    min: float = 0.0
    max: float = 0.0
    shape: float = 0.0
    scale: float = 0.0
    lam: float = 0.0

    def expected(self) -> float:
        """The mean of the distribution in seconds (before abs(), which matters only for wide normals)."""
        if self.type in ("constant", "normal"):
            return self.mean
        if self.type == "uniform":
            return (self.min + self.max) / 2
        if self.type == "gamma":
            return self.shape * self.scale
        if self.type == "exponential":
            return self.scale
        return self.lam

    def sample(self, rng: np.random.Generator) -> float:
        """One draw in seconds, never negative."""
        if self.type == "constant":
            value = self.mean
        elif self.type == "normal":
            value = rng.normal(self.mean, self.stdev) if self.stdev > 0 else self.mean
        elif self.type == "uniform":
            value = rng.uniform(self.min, self.max)
        elif self.type == "gamma":
            value = rng.gamma(self.shape, self.scale)
        elif self.type == "exponential":
            value = rng.exponential(self.scale)
        else:
            value = rng.poisson(self.lam)
        return abs(float(value))

    def to_dict(self) -> dict:
        """The fields that matter for this kind, for resolved-config output."""
        data = asdict(self)
        return {"type": self.type, **{k: data[k] for k in KINDS[self.type]}}


def parse_time(value, path: str) -> tuple[TimeSpec | None, list[tuple[str, str]]]:
    """A YAML time value -> (TimeSpec, []) or (None, [(key path, problem), ...])."""
    if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
        return None, [(path, f"expected seconds (a number) or a distribution mapping, got {value!r}")]
    if not isinstance(value, dict):
        value = {"mean": value}
    kind = value.get("type", "normal" if "stdev" in value else "constant")
    if not isinstance(kind, str) or kind not in KINDS:
        allowed = ", ".join(KINDS)
        return None, [(f"{path}.type", f"unknown distribution {kind!r}; allowed: {allowed}")]
    needed = KINDS[kind]
    problems = [(f"{path}.{k}", f"unknown key for a {kind} distribution; allowed: type, {', '.join(needed)}")
                for k in value if k != "type" and k not in needed]
    # A normal with only a mean is a constant; every other parameter must be given.
    optional = ("stdev",) if kind == "normal" else ()
    problems += [(f"{path}.{k}", f"missing; a {kind} distribution needs {', '.join(needed)}")
                 for k in needed if k not in value and k not in optional]
    params = {}
    for k in needed:
        v = value.get(k, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            problems.append((f"{path}.{k}", f"expected a finite number, got {v!r}"))
        else:
            params[k] = float(v)
    if problems:
        return None, problems
    problems = _range_problems(kind, params, path)
    return (None, problems) if problems else (TimeSpec(type=kind, **params), [])


def _range_problems(kind: str, p: dict, path: str) -> list[tuple[str, str]]:
    # Negative seconds would be folded by abs() in DLIO; here they are a mistake worth naming.
    rules = {
        "constant": [("mean", p.get("mean", 0) >= 0, "must be >= 0 seconds")],
        "normal": [("mean", p.get("mean", 0) >= 0, "must be >= 0 seconds"),
                   ("stdev", p.get("stdev", 0) >= 0, "must be >= 0")],
        "uniform": [("min", p.get("min", 0) >= 0, "must be >= 0 seconds"),
                    ("max", p.get("max", 0) >= p.get("min", 0), "must be >= min")],
        "gamma": [("shape", p.get("shape", 0) > 0, "must be > 0"), ("scale", p.get("scale", 0) > 0, "must be > 0")],
        "exponential": [("scale", p.get("scale", 0) > 0, "must be > 0")],
        "poisson": [("lam", p.get("lam", 0) >= 0, "must be >= 0")],
    }
    return [(f"{path}.{k}", f"{msg}, got {p[k]:g}") for k, ok, msg in rules[kind] if not ok]
