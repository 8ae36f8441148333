# kubelambda: `make run` starts the embedded platform, `make test` runs the whole suite.
# The interpreter of the virtualenv, so of the gateway, controller and agents: the system's
# /usr/bin/python3 when it is 3.11 or newer and can make a venv, else python3 from PATH.
# Distributions build theirs with profile-guided optimisation and LTO and link it statically;
# a default pyenv build is neither, and costs the gateway and agents 20-30% more CPU per
# invoke (issue 11). The platform image runs on Debian's, so `make run` now matches it.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo /usr/bin/python3),python3)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Which interpreter the virtualenv was made from (its path and version). When the choice
# above changes (a pull of this Makefile, PYTHON=, an upgraded or removed interpreter),
# the virtualenv is made again from the new one rather than kept on the old.
INTERPRETER := $(VENV)/.interpreter

.PHONY: run test unit lint bench cluster-up cluster-env cluster-down images clean FORCE

$(INTERPRETER): FORCE
	@chosen="$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')" \
		&& [ -n "$$chosen" ] \
		&& if [ "$$(cat $@ 2>/dev/null)" != "$$chosen" ]; then \
			echo "making $(VENV) from $$chosen" >&2; \
			rm -rf $(VENV) && mkdir -p $(VENV) && echo "$$chosen" > $@; \
		fi

$(STAMP): pyproject.toml $(INTERPRETER)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kubelambda up --example

test: $(STAMP) lint
	$(BIN)/python -m kubelambda_testbed up
	exports="$$($(BIN)/python -m kubelambda_testbed env)" && eval "$$exports" && $(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

cluster-up: $(STAMP)
	$(BIN)/python -m kubelambda_testbed up

cluster-env: $(STAMP)
	@$(BIN)/python -m kubelambda_testbed env

# The function runtime image (runtime-images/python/Containerfile), the platform image
# (platform-image/Containerfile: gateway, controller, dispatcher), both built with buildah,
# and the node's other images, loaded into the running test cluster; prints nothing on stdout.
images: $(STAMP)
	$(BIN)/python -m kubelambda_testbed images

cluster-down: $(STAMP)
	$(BIN)/python -m kubelambda_testbed down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
