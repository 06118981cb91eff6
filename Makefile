# Two commands set everything up on a fresh machine: `make devnet` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch lies on this kind of machine's disk; a plain `torch`
# requirement would pull a multi-GB CUDA build. Empty it to skip torch.
TORCH_SPEC ?= torch==2.13.0
# gpu: triton, whose kernels the tests run in its CPU interpreter and compile for sm_90.
EXTRAS ?= server,dev,gpu
PYTEST_ARGS ?= --durations=40

.PHONY: venv devnet test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m byteleap.gateway.protogen
	touch $(STAMP)

venv: $(STAMP)

devnet: venv
	$(BIN)/byteleap devnet

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: venv
	$(BIN)/byteleap bench challenge --n 2000 --json
	$(BIN)/byteleap bench challenge --n 32768 --verify-only --json
	$(BIN)/byteleap bench network --json
	$(BIN)/byteleap bench scoring --workers 25600 --hours 169 --json
	$(BIN)/byteleap bench gateway --workers 1000 --json
	$(BIN)/byteleap bench validator --workers 256 --json

clean:
	rm -rf $(VENV) .devnet .pytest_cache .mypy_cache .ruff_cache
