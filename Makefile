# The README's commands. Each sets up what it needs on a fresh machine (Python 3.11+ and pip).
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
SAM_VENV   := .venv-sam
SAM        := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
CHECKOV_VENV := .venv-checkov
CHECKOV      := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
STACK      ?= image-recovery
PORT       ?= 8000
# Test processes (pytest-xdist; each test file runs in one of them). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 3
XDIST      := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	@test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(SAM):
	"$$(scripts/find-python)" -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)

$(CHECKOV):
	"$$(scripts/find-python)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

# Every target, once. Each needs only Python 3.11+ and pip unless its line says otherwise.
.PHONY: help demo serve test test-fast soak lint validate security bench fleet-sim chaos redrive teardown publish-panel attach clean
help:
	@echo "make demo           run the main job end to end on an embedded AWS (moto on 127.0.0.1)"
	@echo "make serve          the missing-images panel on a local stack: http://127.0.0.1:$(PORT)/ (PORT=8000; sign-in at a local OIDC provider)"
	@echo "make test           the whole test suite in $(TEST_WORKERS) processes (TEST_WORKERS), about 4 minutes; browser tests need /usr/bin/chromium"
	@echo "make test-fast      the unit tests only, in about 15 s: the edit loop"
	@echo "make soak           the careless-host state machine for 5,000+ steps with a table, then the chaos, race, fuzz and"
	@echo "                    property tests (marker soak) at large sizes (SOAK=1); about 35 minutes (SOAK_ARGS=--examples 200 --steps 40)"
	@echo "make lint           ruff check, ruff format --check, cfn-lint"
	@echo "make validate       sam validate --lint and sam build (aws-sam-cli in .venv-sam; the build needs python3.13)"
	@echo "make security       checkov on template.yaml (in .venv-checkov); skipped checks are justified in .checkov.yaml"
	@echo "make bench          benchmark against a naive baseline on moto, about 10 minutes (BENCH_ARGS=--quick for a smoke run)"
	@echo "make fleet-sim      the worker fleet's Bedrock rate governor, simulated over quota x latency x concurrency,"
	@echo "                    about 4 minutes; exits 1 unless quota use >= 90 %, throttled < 1 %, dead-lettered 0"
	@echo "make chaos          a few thousand jobs with faults in every AWS call; lost and duplicated must be 0 (FAULT_RATE=0.05)"
	@echo "make redrive        move a deployed stack's dead letters back (QUEUE=jobs|tasks; REDRIVE_ARGS=--list shows them; STACK=$(STACK); needs AWS credentials)"
	@echo "make teardown       what deleting the stack removes and keeps; CONFIRM=1 empties its panel bucket and deletes it (STACK=$(STACK))"
	@echo "make publish-panel  upload web/ and a config.js to the deployed stack's panel (STACK=$(STACK); needs AWS credentials)"
	@echo "make attach         TABLE=<name> [DRY_RUN=1] [REGION=...]: add the MissingImages index and a stream to the host's"
	@echo "                    table, printing what it will do and costs, and the sam deploy line (needs AWS credentials)"
	@echo "make clean          remove .aws-sam, out/ and the pytest and ruff caches (keeps the virtual environments)"
	@echo "make help           this list"

demo: $(STAMP)
	$(PY) -m devtools.demo

serve: $(STAMP)
	$(PY) -m devtools.serve --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

soak: $(STAMP)
	$(PY) -m tests.careless_host $(or $(SOAK_ARGS),--examples 200 --steps 40)
	SOAK=1 $(PY) -m pytest $(XDIST) -m soak --durations=15 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

validate: $(SAM)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-east-1
	@py313="$$(scripts/find-python --exact 3.13)" || { echo "sam build needs python3.13 (Lambda's runtime) on this machine" >&2; exit 1; }; \
	  SAM_CLI_TELEMETRY=0 PATH="$$(dirname "$$py313"):$$PATH" $(SAM) build
	@test -f .aws-sam/build/CommonLayer/python/image_recovery/__init__.py \
	  || { echo "layer layout is wrong: image_recovery is not under python/ in the built layer" >&2; exit 1; }
	@echo "sam build: layer package is at python/image_recovery (imported from /opt/python on Lambda)"

security: $(CHECKOV)
	$(CHECKOV) --file template.yaml --config-file .checkov.yaml

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

fleet-sim: $(STAMP)
	$(PY) -m bench.fleet_sim $(FLEET_SIM_ARGS)

chaos: $(STAMP)
	FAULT_RATE=$(or $(FAULT_RATE),0.05) $(PY) -W ignore -m devtools.chaos $(CHAOS_ARGS)

redrive: $(STAMP)
	$(PY) -m devtools.ops redrive --stack-name $(STACK) --queue $(or $(QUEUE),jobs) $(REDRIVE_ARGS)

teardown: $(STAMP)
	$(PY) -m devtools.ops teardown --stack-name $(STACK) $(if $(CONFIRM),--yes,)

publish-panel: $(STAMP)
	$(PY) -m devtools.publish_panel --stack-name $(STACK)

attach: $(STAMP)
	@test -n "$(TABLE)" || { echo "usage: make attach TABLE=<table name> [DRY_RUN=1] [REGION=<region>]" >&2; exit 2; }
	$(PY) -m devtools.attach --table "$(TABLE)" $(if $(DRY_RUN),--dry-run) $(if $(REGION),--region $(REGION)) $(ATTACH_ARGS)

clean:
	rm -rf .aws-sam out .pytest_cache .ruff_cache
