# Two commands from a clean clone: `make demo` and `make test`. Both build .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: venv demo demo-segy demo-survey test test-fast dev data bench clean-data

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

## Train on the real labelled F3 patches, map the real F3 inline 362 (SEG-Y) with them; data beside the repository.
## SEIS_SEGY makes the backbone auto+instnorm unless SEIS_BACKBONE is set (docs/segy.md, "Why the backbone changes when a survey is mapped").
SHARED_DATA ?= $(CURDIR)/../shared/data
demo-segy: venv
	@test -d "$(SHARED_DATA)/f3_patches" -a -f "$(SHARED_DATA)/sections/f3_inline362.sgy" || \
	  { echo "demo-segy needs $(SHARED_DATA)/f3_patches and $(SHARED_DATA)/sections/f3_inline362.sgy: set SHARED_DATA=/path/to/shared/data"; exit 2; }
	SEIS_TRAIN_DIR="$(SHARED_DATA)/f3_patches" SEIS_SEGY="$(SHARED_DATA)/sections/f3_inline362.sgy" \
	  SEIS_DATA_DIR=data/f3_segy $(PY) -m seis_assets.demo
	$(PY) benchmarks/bench_facies_map.py --labels data/f3_segy/outputs/sections/f3_inline362.sgy

## Map a survey nobody labelled (segy_settings.models=survey: no patches) and score it against its interpreters' labels:
## the real F3 inline 241 of $(SHARED_DATA)/labelled_sections; SURVEY=/path/to/file.sgy maps another (scored if <stem>_labels.npy is beside it).
## UNITS=n: how many stratigraphic units to cut (segy_settings.units); UNITS=0 maps the window clusters instead.
SURVEY ?= $(SHARED_DATA)/labelled_sections/inline_241.sgy
UNITS ?= 10
demo-survey: venv
	@test -f "$(SURVEY)" || { echo "demo-survey needs $(SURVEY): set SHARED_DATA=/path/to/shared/data or SURVEY=/path/to/file.sgy"; exit 2; }
	SEIS_SEGY="$(SURVEY)" SEIS_SEGY_MODELS=survey SEIS_SEGY_UNITS=$(UNITS) SEIS_DATA_DIR=data/survey $(PY) -m seis_assets.demo_survey

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
