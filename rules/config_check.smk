# The matrix config checked against configs/schemas/config.schema.yaml before Snakemake's own validate()
# (which then fills the defaults): one line per problem, naming its key path (`searches.unet3d.sweep[0]:
# 0 is less than the minimum of 1`), instead of the schema's text. Python only; no rules.

import jsonschema
import yaml


def _key_path(parts):
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(top level)"


def schema_problems(cfg, schema_file):
    """'key.path: what is wrong' for every place `cfg` breaks the schema, in key order."""
    with open(schema_file) as f:
        schema = yaml.safe_load(f)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_key_path(e.absolute_path)}: {e.message}" for e in errors]


def check_schema(cfg, schema_file):
    problems = schema_problems(cfg, schema_file)
    if problems:
        raise ValueError("config:\n  {}".format("\n  ".join(problems)))
