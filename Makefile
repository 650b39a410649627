# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The virtualenv is created if missing; torch is installed first, with exactly
# the spec that resolves to the CPU wheel on local disk (any other spec pulls
# a multi-GB CUDA build). pip only: uv/poetry do not see the local wheel.
# Spark tests need Java 17 and start a local[*] session themselves. obp 0.5.7 is
# the off-policy parity reference for the tests only; it declares Python < 3.11,
# so it goes in without its dependencies (seaborn is needed for its import).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.frontdesk-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: venv demo test test-slow test-all lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,spark,serve,report,static]'
	$(PY) -m pip install --quiet --no-deps --ignore-requires-python obp==0.5.7 seaborn
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/frontdesk demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format: $(STAMP)
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/retrieval_quality.py
	$(PY) benchmarks/latency.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
