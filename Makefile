# FeedApp: `make dev` runs the whole system, `make test` runs the whole suite.
# Both install what is missing (uv, Python dependencies, Kafka jars, data folders).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
PY := .venv/bin/python
PYTEST_ARGS ?=
# `make services|migrate|status PROFILE=test` acts on another stack profile, as
# FEEDAPP_STACK_PROFILE does for `python -m stack` and `manage.py`; FEEDAPP_STACK_PORT_OFFSET
# shifts its ports for both alike.
ifdef PROFILE
export FEEDAPP_STACK_PROFILE := $(PROFILE)
endif

.PHONY: help install dev test services stop status migrate lint format openapi clean-stack

help:
	@echo "make dev       start services, migrations, web server (:8000) and consumer; Ctrl-C stops all"
	@echo "make test      start the test stack if needed and run the whole suite"
	@echo "make services  start the development stack (PostgreSQL, Valkey, Kafka)"
	@echo "make stop      stop the development and test stacks"
	@echo "make status    show what is running"
	@echo "make migrate   apply db/migrations to the development database (PROFILE=test: the test one)"
	@echo "make lint      ruff (lint, format check) and mypy"
	@echo "make openapi   rewrite docs/openapi.json from the routes (review and commit the diff)"

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on some machines
# and in many containers) Python would otherwise compile Django and every other library
# again in each process it starts, seconds of CPU per web worker, consumer and test server.
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.installed
	@$(PY) -m compileall -q -j 0 accounts db demo feedapp moderation polls realtime stack votes >/dev/null || true

services: install
	$(PY) -m stack start

stop: install
	$(PY) -m stack stop
	$(PY) -m stack --profile test stop

status: install
	-$(PY) -m stack status
	-$(PY) -m stack --profile test status

migrate: services
	$(PY) manage.py dbmate up

dev: install
	$(PY) -m stack.dev

test: install
	$(PY) -m stack --profile test start
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

openapi: install
	$(PY) -m feedapp.openapi

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean-stack: stop
	rm -rf .stack/dev .stack/test
