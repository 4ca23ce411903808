# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The local printer simulator `make demo` runs beside the admin (the sandbox printer).
SIMULATOR_PORT ?= 8765
# Where printers fetch proof images from: the served admin.
PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: venv demo demo-data test lint typecheck bench graphs clean mutation

venv: $(STAMP)

# Reinstall whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo-data: venv
	$(PY) manage.py migrate --no-input -v0
	PUBLIC_BASE_URL=$(PUBLIC_BASE_URL) $(PY) manage.py demo --url http://$(HOST):$(PORT)

# The admin, a task worker (qcluster) and the printer simulator, one environment, until Ctrl-C stops all three.
demo: demo-data
	$(PY) manage.py demo_serve --addr $(HOST):$(PORT) --simulator-port $(SIMULATOR_PORT) --public-url $(PUBLIC_BASE_URL)

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

# Mutation testing (docs/mutation.md), not part of CI.  One worker, one module
# at a time, in a copy of the tree so mutants/ never lands in the checkout:
#   make mutation                                   every module below
#   make mutation MODULE=common/fsm.py              one module (any module)
#   make mutation MODULE=… MUTATION_TESTS="a.py b/"  the tests that may kill it
# Without MUTATION_TESTS the module's usual tests are used (the case below);
# DATABASE_URL=postgres://… runs the mutants against PostgreSQL.
MODULE ?= mailpieces/status.py common/fsm.py campaigns/validation.py campaigns/keys.py campaigns/qualification.py
MUTATION_DIR ?= $(or $(TMPDIR),/tmp)/postcards-mutation
MUTATION_TESTS ?=

mutation: venv
	@set -e; for module in $(MODULE); do \
	  case "$$module" in \
	    mailpieces/status.py) tests="mailpieces/tests/test_status_rules.py mailpieces/tests/test_models.py";; \
	    common/fsm.py) tests="common/tests/test_fsm.py common/tests/test_bulk_concurrency.py campaigns/tests/test_transitions.py campaigns/tests/test_models.py campaigns/tests/test_spec_graph.py mailpieces/tests/test_models.py mailpieces/tests/test_status_rules.py";; \
	    campaigns/validation.py) tests="campaigns/tests/test_validation*.py campaigns/tests/test_revalidation*.py campaigns/tests/test_importing.py campaigns/tests/test_sync.py campaigns/tests/test_sync_review_fixes.py";; \
	    campaigns/keys.py) tests="campaigns/tests/test_validation_keys.py campaigns/tests/test_validation.py";; \
	    campaigns/qualification.py) tests="campaigns/tests/test_qualification.py campaigns/tests/test_qualification_rules.py campaigns/tests/test_qualification_rules_batches.py campaigns/tests/test_qualification_concurrency.py campaigns/tests/test_revalidation.py campaigns/tests/test_dry_run.py campaigns/tests/test_models.py";; \
	    *) tests="campaigns/tests common/tests";; \
	  esac; \
	  $(if $(MUTATION_TESTS),tests="$(MUTATION_TESTS)";) \
	  dir="$(MUTATION_DIR)/$$(echo "$$module" | tr '/.' '__')"; \
	  echo "== mutating $$module in $$dir (tests: $$tests)"; \
	  rm -rf "$$dir"; mkdir -p "$$dir"; \
	  tar -c --exclude=./.venv --exclude=./mutants --exclude='*.sqlite3*' --exclude=__pycache__ --exclude=./.hypothesis . \
	    | tar -x -C "$$dir"; \
	  printf 'only_mutate = ["%s"]\npytest_add_cli_args_test_selection = [%s]\n' \
	    "$$module" "$$(printf '"%s", ' $$tests)" >> "$$dir/pyproject.toml"; \
	  name="$$(echo "$${module%.py}" | tr / .)"; \
	  (cd "$$dir" && $(abspath $(VENV))/bin/mutmut run --max-children 1 "$$name.*" > mutmut.log 2>&1) \
	    || { tail -c 3000 "$$dir/mutmut.log"; exit 1; }; \
	  (cd "$$dir" && $(abspath $(PY)) -c 'import json, sys; \
	    codes = list(json.load(open(sys.argv[1]))["exit_code_by_key"].values()); \
	    timeouts = sum(c in (24, -24, 36, 152, 255) for c in codes); killed = sum(c in (1, 3) for c in codes) + timeouts; \
	    survived = codes.count(0); untested = sum(c in (5, 33) for c in codes); total = len(codes); \
	    print(f"{sys.argv[2]}: {killed}/{total} killed ({100 * killed / total:.1f} %; {timeouts} by timeout), " \
	          f"{survived} survived, {untested} reached by no selected test"); \
	    print(f"survivors: cd {sys.argv[3]} && mutmut results; mutmut show <name>")' \
	    "mutants/$$module.meta" "$$module" "$$dir"); \
	done
