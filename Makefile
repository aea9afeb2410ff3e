# The two set-up commands: `make demo` and `make test`. Both are idempotent and
# fast the second time (the install is skipped while pyproject.toml and
# constraints.txt are unchanged).

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
# torch first and pinned: the CPU build on this machine's disk. A bare `torch`
# (or a range a newer release satisfies) would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test airflow airflow-celery install install-full lint peers clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed-core: $(PY) pyproject.toml constraints.txt
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-full: $(VENV)/.installed-core
	$(PIP) install -q -c constraints.txt -e '.[airflow,celery,dev]'
	touch $@

install: $(VENV)/.installed-core
install-full: $(VENV)/.installed-full

## make demo: the simulated production stream on the embedded default (SQLite under ./.drift)
demo: install
	$(VENV)/bin/drift demo

## make test: the whole suite, Postgres and Airflow included
test: install-full
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/pytest

## make airflow: a local Airflow (standalone) on this project's DAGs and the demo's monitor
airflow: install-full
	bash scripts/airflow_local.sh

## make airflow-celery: the same DAGs on the CeleryExecutor: Redis broker, Postgres metadata and
## result backend, api-server, scheduler, dag-processor and two Celery workers (Ctrl-C stops all)
airflow-celery: install-full
	bash scripts/ensure_postgres.sh
	bash scripts/airflow_celery.sh

## make lint: ruff (style, imports, annotations, unused noqa) and mypy (config in pyproject.toml)
lint: install-full
	$(VENV)/bin/ruff check drift dags tests benchmarks
	$(VENV)/bin/mypy

## make peers: the separate benchmark environment with the peer tools (pytorch-ood, NannyML, river)
peers:
	bash benchmarks/setup_peers.sh

clean:
	rm -rf $(VENV) .drift .pytest_cache
