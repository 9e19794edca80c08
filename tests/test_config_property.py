"""Random YAML documents and overrides: the loader returns a Workload or raises ConfigError, nothing else."""
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dldriver.config import derive_plan, load_workload, resolved_dict
from dldriver.config.validate_output import render_validation
from dldriver.config.schema import known_paths
from dldriver.errors import ConfigError

PATHS = known_paths()
KEYS = sorted({p.split(".")[-1] for p in PATHS} | {p.split(".")[0] for p in PATHS}
              | {"workload", "record_length", "data_reader", "model_size", "type", "mean", "stdev", "min", "max"})
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**20), st.floats(allow_nan=True),
                    st.sampled_from(["npz", "pytorch", "tensorflow", "s3://b/p", "gs://x", "seed", "uniform"]),
                    st.text(string.printable, max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=4)), max_leaves=12)
# Documents shaped like workloads: known sections with known or random keys, so the deeper checks are reached.
SECTIONS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)
DOCUMENTS = st.one_of(VALUES, st.dictionaries(st.sampled_from(KEYS), st.one_of(SECTIONS, VALUES), max_size=6))
OVERRIDES = st.lists(st.one_of(
    st.text(string.printable, max_size=20),
    st.builds(lambda p, v: f"{p}={v}", st.sampled_from(PATHS), st.text(string.printable, max_size=10)),
    st.builds(lambda p, v: f"++workload.{p}={yaml.safe_dump(v, default_flow_style=True).strip()}",
              st.sampled_from(PATHS), VALUES)), max_size=3)
TEXTS = st.one_of(st.text(max_size=80), st.builds(yaml.safe_dump, DOCUMENTS))


def _exercise(path, overrides):
    try:
        workload = load_workload(path, overrides)
        plan = derive_plan(workload, ranks=2)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
        return
    resolved_dict(workload)
    render_validation(workload, plan, as_json=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=DOCUMENTS, overrides=OVERRIDES)
def test_random_documents(tmp_path, doc, overrides):
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(doc))
    _exercise(path, overrides)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_random_text(tmp_path, text):
    path = tmp_path / "random.yaml"
    path.write_text(text)
    _exercise(path, [])
