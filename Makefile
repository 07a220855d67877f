# The single entry point. Every target creates .venv on first use, so each one works as
# the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PY_FILES := src tests benchmarks examples
# Where PYTHONDONTWRITEBYTECODE is set (as on our CI machines), every process compiled
# every module it imported from source, every time: `import sklearn, pandas, loopline`
# took 6.2 s of CPU instead of 1.8, in each of the suite's hundreds of subprocesses.
unexport PYTHONDONTWRITEBYTECODE
KSERVE := 0.21.0

.PHONY: demo test lint types imports unit bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependency list changes. uv installs in seconds what pip takes
# minutes for (parallel downloads, no byte-compiling): CI installs on every run.
UV := $(BIN)/uv
$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv

$(STAMP): pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[dev]'
	# kserve's REST client, a test dependency, pins pandas<3; the client itself runs on pandas 3,
	# so it is installed without its pandas pin (its other requirements as it states them)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps 'kserve==$(KSERVE)'
	$(BIN)/python -c "import importlib.metadata as m; print('\\n'.join(r for r in m.requires('kserve') if 'extra' not in r and not r.startswith('pandas')))" > $(VENV)/kserve-requirements.txt
	$(UV) pip install --quiet --python $(BIN)/python -r $(VENV)/kserve-requirements.txt
	touch $(STAMP)

install: $(STAMP)

# The demo needs the core, ONNX export and the server, not the dev toolchain (Ray, moto,
# mypy, ruff): ~840 MB instead of ~1.8 GB.
$(VENV)/.installed-demo: pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[demo,onnx,serve]'
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check $(PY_FILES)
	$(BIN)/ruff format --check $(PY_FILES)

types: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

SUITE := $(BIN)/pytest -n 2 --dist loadgroup --durations=15

unit: $(STAMP)
	$(SUITE)

# mypy (one core, ~40 s from a cold cache) runs beside the tests, which often wait on
# servers and subprocesses; its output is printed after theirs, and either failing fails.
test: lint imports
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & types=$$!; \
	$(SUITE); tests=$$?; \
	wait $$types; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
