# Every target creates and uses .venv by itself; nothing needs installing by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench venv clean

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "python3-venv missing; installing it with apt-get"; \
		apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip

# Byte-compiling up front matters for plugins: each plugin start imports tether, and
# with PYTHONDONTWRITEBYTECODE set nothing would ever be cached.
$(STAMP): $(PY) pyproject.toml setup.py src/tether/_speedups.c
	$(PY) -m pip install -q -e .
	@$(PY) -m compileall -q src >/dev/null
	@touch $@

# The tests check the C extension (tether._speedups) is built: where it did not (no C
# compiler or Python headers), install them and build it again.
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	@$(PY) -c 'import tether._speedups' 2>/dev/null || { \
		echo "tether's C extension did not build; installing gcc and python3-dev with apt-get"; \
		apt-get update -q && apt-get install -y -q gcc python3-dev && \
		$(PY) -m pip install -q --no-deps --force-reinstall -e . && \
		$(PY) -c 'import tether._speedups'; }
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/calculator/host.py
	@echo
	@echo "== the same calculator run by the plugin manager (examples/plugin-config.yaml)"
	$(PY) examples/calculator/managed_host.py

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks
	$(VENV)/bin/mypy
	@# Each gRPC example imports its own generated code by plain module name.
	cd examples/kv && MYPYPATH=.:generated ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
		--explicit-package-bases host.py plugin.py shared.py
	cd examples/counter && MYPYPATH=.:generated ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
		--explicit-package-bases host.py plugin.py shared.py
	@# The gRPC calculator also imports the native example as `examples.calculator` (repo root).
	cd examples/calculator/grpc && MYPYPATH=.:generated:../../.. ../../../$(VENV)/bin/mypy \
		--config-file ../../../pyproject.toml --explicit-package-bases host.py plugin.py shared.py

test: $(DEV_STAMP)
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest

bench: $(DEV_STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	@# Typed like the rest; checked here because it needs the peers installed above.
	$(VENV)/bin/mypy --strict benchmarks/*.py
	@# Sources edited since the install would be compiled afresh by every plugin start
	@# (PYTHONDONTWRITEBYTECODE keeps Python from caching them): spawn times would show it.
	@$(PY) -m compileall -q src >/dev/null
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
