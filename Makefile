# Two commands do all set-up on a fresh Debian 12 machine: `make run` and `make test`.
# Every Python package comes from the locks in requirements/ (regenerate with `make lock`), installed with
# --no-deps so nothing but the lock picks a version; `pip check` proves the set is complete.
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8765
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
export OPENBLAS_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export GLOG_minloglevel := 2

.PHONY: install install-test run test lint fuzz lock bench readme-figures gallery clean

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

# What running needs: no compiler, no Chromium, no test extras.
$(RUN_STAMP): requirements/run.txt pyproject.toml package-lock.json scripts/install-system.sh
	bash scripts/install-system.sh run
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q "$$(grep '^pip==' requirements/run.txt)"
	# torch is pinned to 2.13.0 in the lock: pip takes the CPU wheel on local disk (an unpinned torch would
	# fetch a multi-GB CUDA build).
	$(PIP) install -q --no-deps -r requirements/run.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	# the pages' JS (three.js, three-vrm, iwer) from the committed npm lock, served from our own origin
	npm ci --omit=dev --no-audit --no-fund --loglevel=error
	# Kokoro's Mandarin voice vectors: npm pack of kokoro-js@1.2.1, sha512-checked, only the voice files kept
	bash scripts/fetch-kokoro-voices.sh
	touch $@

# The test extras on top: same versions for everything shared (test.txt is resolved against run.txt).
# llama-cpp-python compiles from source. GGML_NATIVE=OFF builds for AVX2/FMA instead of -march=native: on
# CPUs that advertise AMX inside a VM that does not enable it, the native build segfaults in its AMX matmul
# on the first token (seen here with 0.3.36: the server answers 200 and an empty stream).
$(TEST_STAMP): $(RUN_STAMP) requirements/test.txt package-lock.json
	bash scripts/install-system.sh test
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q --no-deps -r requirements/test.txt
	$(PIP) check
	# JS test tools (the Khronos glTF validator) from the committed npm lock
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(PY) -m facestage serve --host $(HOST) --port $(PORT)

test: install-test
	$(PY) -m ruff check facestage tests examples
	$(PY) -m pytest -q

lint: install-test
	$(PY) -m ruff check facestage tests examples

# The property-based suite with 20x the examples the default run uses (~7 minutes here).
fuzz: install-test
	FACESTAGE_FUZZ_EXAMPLES=20 $(PY) -m pytest -q tests/test_fuzz.py

lock:
	bash scripts/lock.sh

bench: install-test
	for b in tracking effects avatar speech server conversation browser cluster; do \
	  $(PY) -m facestage bench $$b --json >/dev/null || exit 1; done
	$(PY) -m facestage.tools.readme_figures

readme-figures: install
	$(PY) -m facestage.tools.readme_figures

gallery: install
	$(PY) -m facestage.tools.gallery docs/img

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
