# Two entry points: `make book` (build the site) and `make test` (the whole suite).
# Both create/update the virtual environment in .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test env check-python check-system lock clean

check-python:
	@$(PYTHON) tools/check_python.py

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

env: check-python $(STAMP)

book: env
	$(PY) tools/build_book.py

check-system:
	@$(PY) tools/check_system.py

# loadfile: a file's tests share a worker (the e2e classes run one after the other, each
# catalog is graded once); the book is built once for all workers (tests/conftest.py).
test: env check-system
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lock: env
	$(PY) -m pip freeze --exclude-editable > requirements-lock.txt

clean:
	rm -rf book/_build book/_static/mathjax
