# Everything from a fresh machine: `make demo` (build + main job), `make test` (build + tests).
VENV ?= .venv
PYTHON ?= python3

.PHONY: install demo test test-fast bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q ".[test]"

demo: install
	$(VENV)/bin/tmac-ort demo

# all tests, including the SmolLM2 end-to-end ones (the first run builds their environments: ~6 min)
test: install
	cd tests && ../$(VENV)/bin/python -m pytest

test-fast: install
	cd tests && ../$(VENV)/bin/python -m pytest -m "not slow"

bench: install
	$(VENV)/bin/python -m pip install -q ".[bench]"
	$(VENV)/bin/tmac-ort bench

clean:
	rm -rf build $(VENV)
