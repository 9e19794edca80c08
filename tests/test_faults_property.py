"""A property at the command line: mutated configs and overrides, with the options anywhere among them,
never end in a traceback, and never exit 0 with a resolved value other than the one given."""
from __future__ import annotations

import contextlib
import io
import json
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dldriver.cli import main
from test_run_helpers import workload_doc

# Whole-number keys and the smallest value each accepts.
INT_KEYS = {"train.epochs": 1, "dataset.num_files_train": 1, "dataset.num_samples_per_file": 1,
            "reader.batch_size": 1, "dataset.num_files_eval": 0, "train.seed": 0}
VALUES = st.one_of(st.integers(-5, 2**70), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.text(string.printable, max_size=6), st.sampled_from(["1e3", "0x10", "~", "[1]", "{a: 1}"]))
BASE = workload_doc("/tmp/dldriver-property-data", "npz", files=4, samples=2)


def cli(*argv) -> tuple[int, str, str]:
    """main() in this process; an exception escaping it is the traceback a user would see."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:     # argparse's own refusals
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def _get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def _checked(code, out, err, expect: dict):
    assert code in (0, 2) and "Traceback" not in err, (code, err)
    if code == 0:
        resolved = json.loads(out)["config"]
        for path, value in expect.items():
            got = _get(resolved, path)
            assert got == value and type(got) is type(value), (path, value, got)
    else:
        assert err.strip() and all(line.startswith(("error:", "usage:", "dldriver")) or not line.strip()
                                   for line in err.splitlines()), err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(INT_KEYS)), VALUES), min_size=1, max_size=3),
       st.integers(0, 3))
def test_overrides_resolve_to_the_value_given_or_are_refused(pairs, where):
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "w.yaml"
        config.write_text(yaml.safe_dump(BASE))
        texts = [(key, value if isinstance(value, str) else
                  yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip())
                 for key, value in pairs]
        argv = ["validate", config, *(f"{key}={text}" for key, text in texts)]
        argv.insert(min(2 + where, len(argv)), "--json")      # the option anywhere among the overrides
        code, out, err = cli(*argv)
        last = {}
        for key, text in texts:                               # later overrides win, as in Hydra
            try:
                last[key] = yaml.safe_load(text)              # what the user typed means, as YAML
            except yaml.YAMLError:
                last[key] = text
        expect = {k: v for k, v in last.items() if type(v) is int and v >= INT_KEYS[k] and v < 2**63}
        if code == 0:
            assert len(expect) == len(last), (argv, out[:200])   # every value given was a valid one
        _checked(code, out, err, expect)


def _mutate(doc: dict, path: tuple, value):
    doc = json.loads(json.dumps(doc))
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node
    if isinstance(node, dict):
        if value == "<delete>":
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return doc


PATHS = st.sampled_from([tuple(k.split(".")) for k in INT_KEYS]
                        + [("dataset", "format"), ("reader", "data_loader"), ("framework",), ("dataset",),
                           ("train", "computation_time"), ("reader", "bacth_size"), ("nosuchsection",)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATHS, st.one_of(VALUES, st.just("<delete>"), st.dictionaries(st.text(max_size=4), VALUES, max_size=2)))
def test_mutated_configs_never_traceback(path, value):
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "w.yaml"
        config.write_text(yaml.safe_dump(_mutate(BASE, path, value)))
        code, out, err = cli("validate", config, "--json")
        key = ".".join(path)
        expect = {key: value} if key in INT_KEYS and type(value) is int and INT_KEYS[key] <= value < 2**63 else {}
        _checked(code, out, err, expect)
        if key in INT_KEYS and code == 0 and value != "<delete>":
            assert expect, (key, value)    # a non-integer or out-of-range value was accepted


NUMBERS = st.one_of(st.integers(-3, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["abc", "", "1e3", "0x10", "-0"]))
OPTIONS = st.dictionaries(st.sampled_from(["--hosts", "--accelerators-per-host", "--host-memory-gib", "--ranks"]),
                          NUMBERS, min_size=1, max_size=3)
SIZING = {"training": str(Path(__file__).resolve().parents[1] / "configs/workloads/unet3d_a100.yaml"),
          "checkpoint": str(Path(__file__).resolve().parents[1] / "configs/workloads/llama_8b_zero3.yaml")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["datasize", "mlperf check"]), st.sampled_from(sorted(SIZING)), OPTIONS)
def test_sizing_options_never_traceback_and_zero_is_never_the_default(command, kind, options):
    """datasize and mlperf check with any numbers for their options: a figure, a verdict (exit 3) or one
    line; a value at or below zero is never taken for the option's default."""
    if command == "mlperf check":
        options.pop("--ranks", None)
    argv = [*command.split(), SIZING[kind], *(x for k, v in options.items() for x in (k, str(v)))]
    code, out, err = cli(*argv)
    assert code in (0, 1, 2, 3) and "Traceback" not in err, (argv, err)
    numbers = {k: float(v) for k, v in options.items() if not isinstance(v, str)}
    if any(not (v > 0) or v != v for v in numbers.values()):   # zero, negative or NaN
        assert code == 2, (argv, out[:300])
    if code in (1, 2):   # one line of ours, or argparse's usage and its own error line
        lines = err.strip().splitlines()
        assert len([x for x in lines if x.startswith("error:")]) == 1 or "usage:" in err and "error:" in lines[-1], err
