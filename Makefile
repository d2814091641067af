# Two commands do all set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
# `make run PORT=8001` serves on another port.
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-requirements

.PHONY: run test install env lint format check serve-prod bench

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	cp requirements.txt $@

install: $(INSTALLED)

# Writes .env with fresh keys on first run; later runs only add variables it lacks.
env:
	@$(PYTHON) -m console.generate_env .env

run: install env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# Production: settings come from the environment (see the README's Deployment section), never from
# the .env that `make run` writes: CONSOLE_ENV_FILE is empty unless you name a file of your own.
serve-prod: export CONSOLE_ENV_FILE ?=
serve-prod: install
	$(BIN)/python manage.py check --deploy --fail-level WARNING
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/gunicorn --config console/gunicorn.conf.py

bench: install env
	$(BIN)/python bench/runner_read.py

test: install env
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
