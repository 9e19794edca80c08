"""Aggregation of a benchmark matrix: runs.csv/parquet, per-cell statistics, plots, an HTML report and
release verdicts against a baseline table (`dldriver aggregate`)."""
from dldriver.aggregate.command import aggregate_command

__all__ = ["aggregate_command"]
