"""Credentials never reach an output: every file that generate, run, validate, aggregate and the workflow
write, and everything they print, is searched for the secret values given in the ways DLIO documents
(storage.storage_options keys, an Azure connection string override), on the real local servers."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dldriver.config import config_hash, load_workload, resolved_dict
from dldriver.redact import mask, redact, redact_text
from faults import ROOT, dldriver, in_process, refused
from test_run_helpers import workload_doc, write_config

SNAKEMAKE = str(Path(__import__("sys").executable).parent / "snakemake")


def leaks(folder: Path, secrets, *results) -> list[str]:
    """Where any secret appears: files under `folder` (but the configs the test wrote) and the output
    of `results`."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and not path.name.startswith("secret-config"):
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    for r in results:
        found += [f"{' '.join(map(str, r.args[3:5]))}: {s}" for s in secrets if s in r.stdout + r.stderr]
    return found


# ---- the redaction itself ------------------------------------------------------------------------

def test_redact_masks_keys_connection_strings_sas_and_url_passwords():
    conn = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5==;"
            "EndpointSuffix=core.windows.net")
    sas = "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2022&sig=AbC%2Bd"
    data = {"storage_options": {"access_key_id": "AKIA123", "secret_access_key": "s3cr3t", "region": "x",
                                "connection_string": conn, "session_token": "Tok-9f8e7d",
                                "account_url": "https://acct.blob.core.windows.net/?sv=2022&sig=XyZ123"},
            "data_folder": "s3://user:hunter2@host/b"}
    out = json.dumps(redact(data))
    for secret in ("AKIA123", "s3cr3t", "c2VjcmV0a2V5==", "Tok-9f8e7d", "XyZ123", "hunter2"):
        assert secret not in out, secret
    assert mask("s3cr3t") in out and "AccountName=acct" in out and '"region": "x"' in out
    assert "AbC%2Bd" not in redact_text(sas) and "BlobEndpoint=https://acct" in redact_text(sas)
    # An echoed mapping or an override in an error message.
    assert "s3cr3t" not in redact_text("unknown key: {'secret_access_key': 's3cr3t'}")
    assert "s3cr3t" not in redact_text("bad override storage.storage_options.secret_access_key=s3cr3t")
    assert redact_text(redact_text(conn)) == redact_text(conn)     # masking twice changes nothing


def test_config_hash_still_tells_secrets_apart(tmp_path):
    def hashed(secret):
        doc = workload_doc(tmp_path / "d", storage={"storage_options": {"secret_access_key": secret}})
        w = load_workload(str(write_config(tmp_path / "secret-config.yaml", doc)))
        assert secret not in json.dumps(resolved_dict(w))
        return config_hash(w)

    assert hashed("one-secret") != hashed("another-secret")


# ---- every output of the commands ----------------------------------------------------------------

@pytest.fixture
def s3_secret_config(tmp_path, s3_env, s3_uri):
    """A workload on the session's SeaweedFS whose credentials are in storage_options (DLIO's way)."""
    options = {"access_key_id": s3_env["AWS_ACCESS_KEY_ID"], "secret_access_key": s3_env["AWS_SECRET_ACCESS_KEY"],
               "endpoint_url": s3_env["AWS_ENDPOINT_URL"]}
    doc = workload_doc(f"{s3_uri}/data", "npz", files=2, samples=2, storage={"storage_options": options})
    path = write_config(tmp_path / "secret-config.yaml", doc)
    # Nothing in the environment: the commands must use (and hide) what the config gives.
    no_env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    return path, [options["access_key_id"], options["secret_access_key"]], no_env


def test_s3_storage_options_never_written(tmp_path, s3_secret_config):
    config, secrets, env = s3_secret_config
    results = [dldriver("generate", config, "-j", "1", "-q", cwd=tmp_path, env=env),
               dldriver("validate", config, "--json", cwd=tmp_path, env=env),
               dldriver("validate", config, cwd=tmp_path, env=env),
               dldriver("verify", config, cwd=tmp_path, env=env),
               dldriver("run", config, "-o", tmp_path / "w/native/s3/r1/rep1", "-q", cwd=tmp_path, env=env)]
    for r in results:
        assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "w/native/s3/r1/rep1/summary.json").read_text())
    assert summary["dldriver"]["config"]["storage"]["storage_options"]["secret_access_key"] == mask(secrets[1])
    results.append(dldriver("aggregate", tmp_path, "--out", tmp_path / "report", cwd=tmp_path))
    assert results[-1].returncode == 0, results[-1].stderr
    assert leaks(tmp_path, secrets, *results) == []


def test_refused_s3_secret_is_not_in_the_error(tmp_path, s3_secret_config):
    config, _, env = s3_secret_config
    wrong = "Wrong-Secret-Value-4711"
    r = dldriver("generate", config, "-j", "1", "-q", f"storage.storage_options.secret_access_key={wrong}",
                 "storage.storage_options.s3_max_attempts=1", cwd=tmp_path, env=env)
    refused(r)
    assert leaks(tmp_path, [wrong], r) == []
    r = dldriver("validate", config, f"storage.storage_options.secret_access_key={wrong}", "--bogus")
    assert r.returncode == 2 and wrong not in r.stderr


def test_azure_connection_string_override_never_written(tmp_path, azure_env, az_uri):
    conn = azure_env["AZURE_STORAGE_CONNECTION_STRING"]
    key = conn.split("AccountKey=", 1)[1].split(";", 1)[0]
    doc = workload_doc(f"{az_uri}/data", "npz", files=2, samples=2)
    config = write_config(tmp_path / "secret-config.yaml", doc)
    override = f"storage.storage_options.connection_string={conn}"
    env = {"AZURE_STORAGE_CONNECTION_STRING": None}
    results = [dldriver("generate", config, override, "-j", "1", "-q", cwd=tmp_path, env=env),
               dldriver("validate", config, override, "--json", cwd=tmp_path, env=env),
               dldriver("run", config, "-o", tmp_path / "out", override, "-q", cwd=tmp_path, env=env)]
    for r in results:
        assert r.returncode == 0, r.stderr
    plan = json.loads(results[1].stdout)
    assert "AccountKey=<redacted:" in plan["config"]["storage"]["storage_options"]["connection_string"]
    # A damaged key in the string: the SDK's refusal reaches the user without the string.
    bad = dldriver("verify", config, override.replace(key, key[:-8] + "AAAAAAA="), cwd=tmp_path, env=env)
    refused(bad)
    assert leaks(tmp_path, [key, key[:-8]], *results, bad) == []


def test_workflow_never_writes_the_secrets(tmp_path, s3_secret_config):
    """The workflow's plan.json (validate --json), run folders, logs and report, with a workload file
    whose storage_options hold credentials."""
    config, secrets, _ = s3_secret_config
    workload = yaml.safe_load(config.read_text())
    workload["dataset"]["data_folder"] = "unused"   # the workflow's backend gives the location
    wl_path = tmp_path / "secret-config-workload.yaml"
    wl_path.write_text(yaml.safe_dump(workload))
    cfg = {
        "matrix": "secret", "results": str(tmp_path / "results"),
        "workloads": {"tiny": {"file": str(wl_path), "loaders": ["native"], "overrides": []}},
        "loaders": {"native": ["reader.data_loader=native"]},
        "backends": {"file": {"uri": "file://{results}/{matrix}/data/{workload}"}},
        "ranks": [1], "repetitions": 1, "services": [], "baseline": None, "tolerance": "5%",
    }
    path = tmp_path / "secret-config-matrix.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = subprocess.run([SNAKEMAKE, "--configfile", str(path), "--cores", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "results/secret"
    assert (out / "tiny/plan.json").is_file() and list(out.rglob("summary.json"))
    assert leaks(tmp_path, secrets) == []
    assert not any(s in r.stdout + r.stderr for s in secrets)


def test_mlperf_commands_and_checkpoint_runs_never_write_the_secrets(tmp_path, s3_env, s3_uri, azure_env, az_uri):
    """Credentials typed as overrides (storage_options keys, an Azure connection string): checkpoint-only
    runs on S3 and Azure (provenance.json, summary.json, dlio.log), `datasize` and `mlperf check` (text and
    JSON, their generate command and subject included) and a search round's file."""
    conn = azure_env["AZURE_STORAGE_CONNECTION_STRING"]
    account_key = conn.split("AccountKey=", 1)[1].split(";", 1)[0]
    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    s3_opts = [f"++storage.storage_options.{k}={v}" for k, v in (
        ("access_key_id", s3_env["AWS_ACCESS_KEY_ID"]), ("secret_access_key", secret),
        ("endpoint_url", s3_env["AWS_ENDPOINT_URL"]))]
    az_opts = [f"++storage.storage_options.connection_string={conn}"]
    doc = {"model": {"name": "tiny_ckpt", "model_size_bytes": 4096}, "framework": "pytorch",
           "workflow": {"train": False, "checkpoint": True},
           "checkpoint": {"num_checkpoints_write": 1, "num_checkpoints_read": 1}}
    config = write_config(tmp_path / "secret-config.yaml", doc)
    results = []
    for name, where, opts in (("s3", f"{s3_uri}/ck", s3_opts), ("az", f"{az_uri}/ck", az_opts)):
        overrides = [f"checkpoint.checkpoint_folder={where}", *opts]
        results += [in_process("checkpoint", config, *overrides, "-o", tmp_path / f"run-{name}", "-q"),
                    in_process("datasize", config, *overrides), in_process("datasize", config, *overrides, "--json"),
                    in_process("mlperf", "check", config, *overrides),
                    in_process("mlperf", "check", config, *overrides, "--json"),
                    in_process("mlperf", "check", config, "--runs", tmp_path / f"run-{name}", "--json")]
    train = write_config(tmp_path / "secret-config-train.yaml", workload_doc(f"{s3_uri}/data"))
    # A search round counts training runs only (a checkpoint-only run is refused): one, with the keys typed.
    results += [in_process("generate", train, *s3_opts, "-q"),
                in_process("run", train, *s3_opts, "-o", tmp_path / "run-train", "-q"),
                in_process("mlperf", "search-round", tmp_path / "run-train", "--sweep", "1",
                           "--out", tmp_path / "round0.json")]
    results += [in_process("datasize", train, *s3_opts), in_process("datasize", train, *s3_opts, "--json"),
                in_process("mlperf", "check", train, *s3_opts, "--json")]
    # `mlperf check` exits 3 (INVALID): these tiny models are none of MLPerf's.
    assert [r.returncode for r in results] == [0, 0, 0, 3, 3, 3] * 2 + [0, 0, 0, 0, 0, 3], \
        [r.stderr for r in results]
    assert (tmp_path / "run-az/provenance.json").is_file() and (tmp_path / "round0.json").is_file()
    assert "<redacted:" in results[-3].stdout and "<redacted:" in json.loads(results[-1].stdout)["subject"]
    assert leaks(tmp_path, [secret, account_key], *results) == []
