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
