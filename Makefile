# Two entry points: `make book` (build the site) and `make test` (the whole suite).
# Both create/update the virtual environment in .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book pdf test test-fast env check-python check-system lock clean hub hub-slurm hub-stop

check-python:
	@$(PYTHON) tools/check_python.py

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# the pinned wheels from pip's sources, unpacked several at a time by uv (tools/install.py)
	$(PY) tools/install.py -r requirements.txt -c requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# byte-compiled here on every core (sandboxes and students read the venv, they cannot write
	@# .pyc files); not the packages' own test suites (/tests/: a sixth of the sources, never
	@# imported here); py312_intrinsics.py is Python 3.12 syntax that torch never imports on 3.11
	$(PY) -m compileall -q -j 0 -x '/tests/|torch/testing/_internal/py312_intrinsics\.py' $(VENV)/lib
	@touch $@

env: check-python $(STAMP)

book: env
	$(PY) tools/build_book.py

# `make book` also prints the whole book to book/_build/html/lec4-book.pdf (Chromium, no LaTeX);
# `make pdf` reprints it from the site already built.
pdf: env
	$(PY) tools/build_book.py --pdf-only

check-system:
	@$(PY) tools/check_system.py --install

# loadfile: a file's tests share a worker (the e2e classes run one after the other, each
# catalog is graded once); the book is built once for all workers (tests/conftest.py).
# --no-loadscope-reorder: files start in tests/conftest.py's order, longest first (not by test count);
# --durations=0 --durations-min=1: benchmarks/suite.py sums them per file for that order.
test: env check-system hub/node_modules/.package-lock.json
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=0 --durations-min=1 $(PYTEST_ARGS)

# The inner loop: the same suite without the tests marked slow, book or browser (no book build,
# no browser, no hub, no Slurm, no whole-class grading). `make test` stays the whole proof.
test-fast: env
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not slow and not book and not browser" $(PYTEST_ARGS)

# The course in a local multi-user JupyterHub (as root; README "JupyterHub"). Ctrl-C or `make hub-stop` ends it.
HUB_PORT ?= 8000
hub/node_modules/.package-lock.json: hub/package.json hub/package-lock.json
	@command -v npm >/dev/null || { echo "make hub: error: npm (Node.js >= 20) not found: JupyterHub's proxy needs it; Debian: apt-get install nodejs npm"; exit 1; }
	cd hub && npm ci --no-audit --no-fund --loglevel=error

hub: env hub/node_modules/.package-lock.json
	$(PY) hub/hub.py start --port $(HUB_PORT)

# The same hub with every user's server a Slurm job (batchspawner; README "The hub beyond one machine"):
# needs a Slurm that `sinfo` reaches (SLURM_CONF=... for a cluster's own configuration).
hub-slurm: env hub/node_modules/.package-lock.json
	$(PY) hub/hub.py start --port $(HUB_PORT) --spawner slurm

hub-stop:
	@$(PY) hub/hub.py stop

lock: env
	$(PY) -m pip freeze --exclude-editable > requirements-lock.txt

clean:
	rm -rf book/_build
