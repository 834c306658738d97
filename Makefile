# `make run` and `make test` set everything up themselves: a virtual environment in .venv with
# the torch build this machine wants (CUDA where nvidia-smi sees a GPU, the CPU wheel elsewhere).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed
# The device machine has torch but no network: `make gpu-check GPU_PYTHON=python3` skips the venv.
GPU_PYTHON ?=

.PHONY: setup run test lint fmt gpu-check browser namespaces clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@if nvidia-smi -L >/dev/null 2>&1 || [ "$$(uname -s)" = Darwin ]; then \
		echo "installing torch $(TORCH_VERSION) (default build)"; \
		$(BIN)/pip install -q torch==$(TORCH_VERSION); \
	else \
		echo "no CUDA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(BIN)/pip install -q torch==$(TORCH_VERSION)+cpu 2>/dev/null \
		|| $(BIN)/pip install -q torch==$(TORCH_VERSION)+cpu --extra-index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The main job: a short offline search on the shipped gpt target (up to 4 islands, opened as the
# first chain stalls; 20 evaluations of 15 s; about 10 minutes on 2 CPU cores). Longer: python -m evo run --resume runs/<id> --max-evals N
run: $(STAMP) namespaces
	$(BIN)/python -m evo run --islands 4 --budget 15 --max-evals 20 --operator offline

test: $(STAMP) browser namespaces lint
	$(BIN)/python -m pytest

# The report's test renders it in a real headless Chromium (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the report's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	} || { echo "make test needs chromium: install it (apt-get install chromium) as root"; exit 1; }

# Evaluations run in namespaces of their own made by util-linux's unshare (Linux); without it
# they fall back to the process isolation level, with a warning.
namespaces:
	@[ "$$(uname -s)" != Linux ] || command -v unshare >/dev/null || { \
		echo "installing util-linux for the namespace isolation level"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null; \
	} || echo "note: util-linux's unshare is missing; evaluations run at the process isolation level"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The prepared GPU check (about 9 minutes on an H100 or H200, no network needed): the gpt
# target's seed program evaluated 4 times on CUDA with pre-warm off, then on, in namespaces, then
# 4 times with pre-warm on at the process level (evo bench prewarm: per run its isolation level,
# evaluations ok, training fraction, MFU, tokens/s, set-up and first-step seconds, experiments
# per GPU-hour projected at a 300 s budget), then its training clock synchronizing every step
# against the GPU left 2 steps behind. The clock shares the compile caches that evo's
# evaluations use (evo/evaluate/sandbox.py), warm by then.
GPU_CHECK_OUT ?= runs/bench
EVO_CACHE ?= $(HOME)/.cache/evo
gpu-check: $(if $(GPU_PYTHON),,$(STAMP))
	$(or $(GPU_PYTHON),$(BIN)/python) -m evo bench prewarm --target targets/gpt --budget 20 \
		--evals 4 --isolation namespace,process --out $(GPU_CHECK_OUT)
	cd targets/gpt && TORCHINDUCTOR_CACHE_DIR=$(EVO_CACHE)/compile/inductor \
		TRITON_CACHE_DIR=$(EVO_CACHE)/compile/triton \
		$(or $(GPU_PYTHON),$(abspath $(BIN))/python) prepare.py clock 8

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
