# kdhybrid: two commands on a fresh machine.
#   make demo   runs the main recipe (egs/synth_en/s5/run.sh) on the embedded corpus
#   make test   runs the test suite
# Both bootstrap the virtualenv in .venv first when it is missing or stale.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.kdhybrid-stamp

.PHONY: all venv test demo bench clean-venv

all: test

# The venv is stale when setup.py or the bootstrap script changed since it was made.
$(STAMP): setup.py local/bootstrap.sh
	bash local/bootstrap.sh --venv $(VENV) --python $(PYTHON)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=25 tests

demo: $(STAMP)
	cd egs/synth_en/s5 && ./run.sh

bench: $(STAMP)
	$(VENV)/bin/python -m kdhybrid.bench posterior-io

clean-venv:
	rm -rf $(VENV)
