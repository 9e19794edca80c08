# The README's two commands: `make run` (the default benchmark matrix) and `make test`.
# Each calls `setup` first, which builds .venv and node_modules once and is a no-op afterwards.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup profiles slurm-packages browser-packages run test clean-results

setup: $(VENV)/.installed node_modules/.installed profiles

# `snakemake --profile slurm` must work as typed: link profiles/slurm where Snakemake looks.
profiles:
	@bash scripts/install-profiles.sh >/dev/null

# The Slurm tests run a real single-node Slurm (Debian packages; needs root, as on CI).
slurm-packages:
	@dpkg -s slurmctld slurmd slurm-client munge >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	   slurmctld slurmd slurm-client munge)

# The report test opens report.html in headless Chromium (Debian's package; needs root, as on CI).
browser-packages:
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup slurm-packages browser-packages
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/*/
