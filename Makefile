# The README's two commands: `make run` (the default benchmark matrix) and `make test`.
# Each calls `setup` first, which builds .venv and node_modules once and is a no-op afterwards.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup profiles system-packages slurm-packages browser-packages run test clean-results

setup: $(VENV)/.installed node_modules/.installed profiles

# `snakemake --profile slurm` must work as typed: link profiles/slurm where Snakemake looks.
profiles:
	@bash scripts/install-profiles.sh >/dev/null

# The Slurm tests run a real single-node Slurm; the report test opens report.html in headless Chromium
# (Debian's packages; needs root, as on CI). One `apt-get update` for both, and none when both are there.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge

system-packages:
	@set -e; slurm=; dpkg -s $(SLURM_PACKAGES) >/dev/null 2>&1 || slurm=1; \
	 browser=; command -v chromium >/dev/null 2>&1 || browser=1; \
	 if [ -n "$$slurm$$browser" ]; then apt-get update -qq; fi; \
	 export DEBIAN_FRONTEND=noninteractive; \
	 if [ -n "$$slurm" ]; then apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES); fi; \
	 if [ -n "$$browser" ]; then apt-get install -y -qq chromium; fi

slurm-packages browser-packages: system-packages

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	@# pip byte-compiles its ~15,000 files on one core: compileall does it on all of them. A file that
	@# does not compile (pip skips those too) is compiled, or refused, when something imports it.
	$(BIN)/python -m compileall -qq -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" || true
	touch $@

# The lock file as it is (npm ci: no resolution), from npm's cache where it has the packages.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --prefer-offline --loglevel=error
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

# The Python packages, Azurite and the Debian packages share nothing: they install side by side.
test:
	@$(MAKE) --no-print-directory -j3 setup system-packages
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/*/
