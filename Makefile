# edxtomo — `make demo` and `make test` do all set-up on a fresh Debian machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
XVFB    := xvfb-run -a -s "-screen 0 1600x1000x24"

.PHONY: setup demo test test-fast lint bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

setup: $(STAMP)

## demo: reconstruct the built-in phantom (napari when a display exists, else headless to ./demo-output)
demo: $(STAMP)
	$(VENV)/bin/edxtomo demo

## test: the whole suite, GUI tests in a real napari viewer under Xvfb
test: $(STAMP)
	$(XVFB) $(PY) -m pytest -p no:xvfb

test-fast: $(STAMP)
	$(PY) -m pytest -m "not gui and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_projector.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
