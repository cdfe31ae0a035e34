# Everything from a fresh machine: `make demo` (build + main job), `make test` (build + tests).
VENV ?= .venv
PYTHON ?= python3

.PHONY: install demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q ".[test]"

demo: install
	$(VENV)/bin/tmac-ort demo

test: install
	cd tests && ../$(VENV)/bin/python -m pytest

bench: install
	$(VENV)/bin/python -m pip install -q ".[bench]"
	$(VENV)/bin/tmac-ort bench

clean:
	rm -rf build $(VENV)
