# robustcv developer commands. `make demo` and `make test` work on a fresh machine:
# they create .venv, install torch 2.13.0 (CPU) and robustcv, and get Fashion-MNIST.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.robustcv-installed

.PHONY: setup data browser demo test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

setup: $(STAMP)

data: setup
	PYTHON=$(BIN)/python ./scripts/get-data.sh

browser:
	./scripts/get-browser.sh || echo "no Chromium: the browser test will be skipped (or fail under CI=true)"

# Audit both zoo models (clean, corruption, adversarial, calibration, OOD), write their HTML
# reports and a comparison. Resumable: running it again skips finished work.
demo: data
	$(BIN)/robustcv audit --model zoo:fmnist-cnn --data fashion-mnist --out runs/fmnist-cnn
	$(BIN)/robustcv audit --model zoo:fmnist-cnn-at --data fashion-mnist --out runs/fmnist-cnn-at
	$(BIN)/robustcv compare runs/fmnist-cnn runs/fmnist-cnn-at --out runs/compare.html
	@echo "reports: runs/fmnist-cnn/report.html runs/fmnist-cnn-at/report.html runs/compare.html"

test: data browser
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not fmnist" -x -q

lint: setup
	$(BIN)/ruff check robustcv tests $(wildcard benchmarks)
	$(BIN)/ruff format --check robustcv tests $(wildcard benchmarks)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
