# The two commands of the README. Both build the virtual environment from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test venv venv-test report-png clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned exactly here (the CPU build this project is tested with): an unpinned torch pulls
# gigabytes of CUDA packages. pyproject.toml asks only for a range, so users keep their own build.
TORCH  := torch==2.13.0

# `make run` installs what the run uses (the `run` extra: runtimes, pruning, report); `make test` adds the
# test tools and the serving stack (`dev`).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[run]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

## The main job on the bundled default: train the digits CNN, trim it, prove it, report.
run: venv
	$(BIN)/trimnet run

## The whole test suite, slow tests included (a bare `pytest` leaves them out: the quick loop).
test: venv-test
	$(BIN)/python -m pytest -q -m "slow or not slow"

## The README's picture of a run's report (headless Chromium: Debian's `chromium` package).
RUN_DIR ?= runs/digits-cnn-run
report-png:
	chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
	  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$$(mktemp -d)" --window-size=1150,2300 \
	  --screenshot=docs/report.png "file://$$(realpath $(RUN_DIR))/report.html"

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
