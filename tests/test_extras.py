"""Optional dependencies: pyproject's extras and the one error that names the missing one."""
import re
import tomllib
from pathlib import Path

import pytest

from dldriver.extras import EXTRAS, MissingExtraError, require
from dldriver.storage import open_storage

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
EXTRA_DEPS = PYPROJECT["project"]["optional-dependencies"]


def test_every_extra_exists_and_all_and_test_install_everything():
    assert set(EXTRAS.values()) <= set(EXTRA_DEPS)
    assert set(EXTRAS.values()) <= set(re.search(r"\[(.*)\]", EXTRA_DEPS["all"][0]).group(1).split(","))
    assert "dldriver[all]" in EXTRA_DEPS["test"]
    core = " ".join(PYPROJECT["project"]["dependencies"])
    assert not any(name in core for name in ("torch", "tensorflow", "jax", "boto3", "azure", "snakemake"))


def test_installed_modules_pass():
    for module in EXTRAS:
        require(module)


def test_a_missing_module_names_its_extra():
    with pytest.raises(MissingExtraError, match=re.escape(
            "nosuchframework is not installed; it comes with the [pytorch] extra: pip install "
            "'dldriver[pytorch]'")):
        require("nosuchframework", extra="pytorch")
    with pytest.raises(MissingExtraError, match=r"\[azure\] extra"):
        require("nosuchsdk.storage.blob", extra="azure")


def test_a_backend_without_its_sdk_says_which_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name, *a))
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'dldriver[s3]'")):
        open_storage("s3://bucket/data")


def test_a_loader_without_its_framework_says_which_extra_before_any_rank_starts(monkeypatch):
    import importlib.util

    from dldriver.errors import ConfigError
    from dldriver.loaders import check_loader

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'dldriver[jax]'")):
        check_loader("jax")
    check_loader("native")
    with pytest.raises(ConfigError, match="'dali' is not supported"):
        check_loader("dali")
