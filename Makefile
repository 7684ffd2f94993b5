# Two commands from a clean clone: `make demo` and `make test`. Both build .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: venv demo test test-fast dev data bench clean-data

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.14.1 / torchvision==0.29.1 come from this machine kind's local files (about 2 minutes)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Generate demo data if data/train is empty, materialize every asset, print the metrics.
demo: venv
	$(PY) -m seis_assets.demo

## The whole test suite (unit, Dagster in-process, webserver + daemon end to end).
test: venv
	$(PY) -m pytest -q -p no:cacheprovider

## Unit tests only (seconds).
test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

## Dagster UI on http://127.0.0.1:3000 (webserver + daemon, so sensors and schedules run).
dev: venv
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

## Synthetic LANDMASS-like patches into data/train and data/test.
data: venv
	$(PY) -m seis_assets.synthetic --out data

bench: venv
	$(PY) benchmarks/bench_features.py

clean-data:
	rm -rf data/train data/test data/warehouse data/models data/outputs data/incoming
