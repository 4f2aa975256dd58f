# Everything a newcomer needs: `make run` (the main job) and `make test` (the tests).
# Both create .venv on first use from requirements.lock (the exact versions CI tests, with their hashes) and
# re-install when the lock or pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The lowest supported torch/torchvision (pyproject's floor), with everything else as in the lock.
LOWEST_VENV := .venv-lowest
LOWEST_LOCK := requirements-lowest.lock
LOWEST_STAMP := $(LOWEST_VENV)/.installed
UV_COMPILE = $(PY) -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock" --quiet

# As many tests at a time as the machine has cores, at most 4 (pytest-xdist; a file's tests, and the cluster's, one
# after another: tests/tiers.py, group_of): the slow tiers are CPU-bound. `make test WORKERS=1` runs one at a time.
# See docs/development.md, "Tests at once".
WORKERS = $(shell n=$$(nproc); echo $$(( n < 4 ? n : 4 )))
PARALLEL = $(if $(filter-out 1,$(WORKERS)),-n $(WORKERS) --dist loadgroup)

.PHONY: run test test-fast test-lowest lint lock clean-venv browser postgres

# $(1): the venv, $(2): its lock. Hashes are required, so nothing outside the lock is installed; the project itself
# goes in without its dependencies (they are all in the lock).
define install
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(2)
	$(1)/bin/python -m pip install --quiet --no-deps -e .
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml $(LOCK)
	$(call install,$(VENV),$(LOCK))

$(LOWEST_STAMP): pyproject.toml $(LOWEST_LOCK)
	$(call install,$(LOWEST_VENV),$(LOWEST_LOCK))

run: $(STAMP)
	$(PY) -m search.run $(ARGS)

# Every tier (tests/tiers.py: a marker per thing a test starts), the real integration tests included.
test: $(STAMP) browser postgres
	$(PY) -m pytest $(PARALLEL) $(ARGS)

# The tests that start nothing (no Ray, no process, no server): the loop to run after each change.
test-fast: $(STAMP)
	$(PY) -m pytest --tier fast $(ARGS)

# The model and the training loop on the lowest supported torch (what .ci/run checks after `make test`): the quick
# fast tier of the two packages that depend on torch's API; the other tiers (Ray, whole trainings) run in `make test`.
test-lowest: $(LOWEST_STAMP)
	$(LOWEST_VENV)/bin/python -m pytest tests/t2t tests/trainables --tier fast $(ARGS)

# Re-compile the locks after a change to pyproject.toml; pins that still fit are kept (uv reads the old lock).
lock: $(STAMP)
	$(UV_COMPILE) --universal -o $(LOCK)
	$(UV_COMPILE) --python-platform x86_64-manylinux_2_28 --override lowest.txt -o $(LOWEST_LOCK)

# The report tests render HTML in headless Chromium (Debian's package; needs root the first time).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The MLflow server's PostgreSQL test starts its own server from Debian's package (initdb, pg_ctl).
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean-venv:
	rm -rf $(VENV) $(LOWEST_VENV)
