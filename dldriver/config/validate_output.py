"""What `dldriver validate` prints: the resolved config and the plan, as a table or as JSON."""
from __future__ import annotations

import json

from dldriver.config.profiles import profile_report
from dldriver.config.resolved import config_hash, resolved_dict
from dldriver.config.uri import locations
from dldriver.units import GiB
# Time values stay on one line: {'type': 'normal', 'mean': 1.0, 'stdev': 0.1}.
TIME_KEYS = ("train.computation_time", "evaluation.eval_time", "reader.preprocess_time")


def render_validation(workload, plan, as_json: bool = False) -> str:
    """JSON {"config", "plan", "config_hash", "source", "storage", "profiles"}, or a readable table.

    profiles: per framework, each profile key's resolved value and where it came from."""
    where = locations(workload)
    data = {
        "config": resolved_dict(workload),
        "plan": plan.to_dict(),
        "config_hash": config_hash(workload),
        "source": workload.source,
        "storage": {"dataset_uri": where.dataset, "checkpoint_uri": where.checkpoint},
        "profiles": profile_report(workload),
    }
    if as_json:
        return json.dumps(data, indent=2)
    rows = [("workload", f"{workload.model.name} ({workload.source})"), ("config hash", data["config_hash"])]
    rows += [(k, v) for k, v in data["storage"].items()]
    lines = _table("", rows)
    lines += _table(f"plan for {plan.ranks} rank(s)", [(k, _show_plan(k, v)) for k, v in data["plan"].items()])
    lines += _table("resolved config", list(_flatten(data["config"], "")))
    for framework, keys in data["profiles"].items():
        lines += _table(f"{framework} profile (value, from)",
                        [(k, f"{_show(v['value'])}  ({v['from']})") for k, v in keys.items()])
    return "\n".join(lines)


def _table(title: str, rows: list) -> list[str]:
    width = max(len(k) for k, _ in rows)
    head = [f"\n{title}"] if title else []
    return head + [f"  {k:<{width}}  {_show(v)}" for k, v in rows]


def _flatten(data: dict, prefix: str):
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in TIME_KEYS:
            yield from _flatten(value, path + ".")
        else:
            yield path, value


def _show_plan(key: str, value):
    if "bytes" in key and key != "sample_bytes" and value >= GiB:
        return f"{value} ({value / GiB:.2f} GiB)"
    if "seconds" in key:
        return f"{value:.3f}"
    return value


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "null" if value is None else str(value)
