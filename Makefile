# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv demo demo-data serve test test-postgres lint typecheck bench graphs clean

venv: $(STAMP)

# Reinstall whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo-data: venv
	$(PY) manage.py migrate --no-input -v0
	$(PY) manage.py demo --url http://$(HOST):$(PORT)

demo: demo-data
	@echo "Serving the admin on http://$(HOST):$(PORT)/admin/ (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT)

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy .

bench: venv
	$(PY) bench/run.py

graphs: venv
	$(PY) manage.py mermaid_transitions --write docs/state-machines.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache test_postcards_*.sqlite3*
