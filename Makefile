# Everything from a fresh machine: `make demo` (build + main job), `make test` (build + tests).
VENV ?= .venv
PYTHON ?= python3

.PHONY: install demo test test-fast test-arm arm-tools bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q ".[test]"

# the main job on a built-in default: SmolLM2-135M-Instruct int4 -> LutGemm, an answer, decode tok/s
# (the first run builds its environments and models: ~5 min); `tmac-ort demo` checks one layer
demo: install
	$(VENV)/bin/python models/smollm2/recipe.py demo

# all tests, including the SmolLM2 end-to-end ones (the first run builds their environments: ~6 min)
test: install
	cd tests && ../$(VENV)/bin/python -m pytest

test-fast: install
	cd tests && ../$(VENV)/bin/python -m pytest -m "not slow"

# the kernels of aarch64 (NEON, with and without the dot product) under qemu-user, against the
# exact product and the scalar kernel; no ONNX Runtime needed (custom_ops/tests/kernel_check.sh)
test-arm: arm-tools
	custom_ops/tests/kernel_check.sh aarch64

# Debian's aarch64 cross compiler and qemu-user, installed with apt where this user can
arm-tools:
	@command -v aarch64-linux-gnu-g++ > /dev/null && command -v qemu-aarch64 > /dev/null || \
	  { command -v apt-get > /dev/null && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && apt-get install -y -qq g++-aarch64-linux-gnu qemu-user > /dev/null; } || \
	  { echo "test-arm needs g++-aarch64-linux-gnu and qemu-user (apt-get install g++-aarch64-linux-gnu qemu-user)"; exit 1; }

bench: install
	$(VENV)/bin/python -m pip install -q ".[bench]"
	$(VENV)/bin/tmac-ort bench

clean:
	rm -rf build $(VENV)
