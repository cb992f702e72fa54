# Two commands do all set-up on a fresh Debian 12 machine: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export GLOG_minloglevel := 2

.PHONY: install run test lint bench gallery clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system.sh
	bash scripts/install-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU wheel on local disk; unpinned pip would fetch a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,test]"
	touch $(STAMP)

run: install
	$(PY) -m facestage serve --host 127.0.0.1 --port 8765

test: install
	$(PY) -m ruff check facestage tests examples
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check facestage tests examples

bench: install
	for b in tracking effects avatar speech server; do $(PY) -m facestage bench $$b --json; done

gallery: install
	$(PY) -m facestage.tools.gallery docs/img

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
