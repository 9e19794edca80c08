"""Workload configs: load a DLIO YAML strictly (both key spellings, overrides), derive the plan."""
from dldriver.config.loader import load_workload
from dldriver.config.plan import Plan, derive_plan
from dldriver.config.resolved import config_hash, resolved_dict

__all__ = ["load_workload", "derive_plan", "resolved_dict", "config_hash", "Plan"]
