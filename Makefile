# crm-metrics: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip on these machines warns about missing local mirrors; keep the output readable
PIPQUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
APT_PACKAGES := postgresql libpostgresql-jdbc-java chromium

.PHONY: demo test install system-deps java lint typecheck unit bench bench-generate docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(PIPQUIET)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]' $(PIPQUIET)
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

# Java 17 for Spark; PostgreSQL server and JDBC driver for the warehouse tests (Debian packages).
java:
	@command -v java >/dev/null || { apt-get update -q && apt-get install -y -q openjdk-17-jre-headless; }

system-deps: java
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -f /usr/share/java/postgresql.jar ] || ! command -v chromium >/dev/null; then \
		echo "installing $(APT_PACKAGES)"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

# 1) Generate a sample warehouse (DuckDB, ./data) and run the pipeline for its last day.
demo: install java
	$(BIN)/crm-metrics generate --customers 20000 --start 2024-01-01 --end 2024-12-31 --seed 7
	$(BIN)/crm-metrics run --date 2024-12-31
	@echo "outputs: DuckDB marts in data/warehouse.duckdb (schema marts), lake in data/lake, Data Docs in data/lake/quality/data_docs/index.html"

# 2) Lint, type-check and run the whole suite against real DuckDB, PostgreSQL, Spark, Airflow, GE and S3.
# Two workers, one file each at a time: module and session fixtures stay within a worker.
test: install system-deps lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy jobs schemas dags

unit: install
	$(BIN)/pytest -q tests/unit

bench: install java
	$(BIN)/crm-metrics bench --lines 1000000
	$(BIN)/crm-metrics bench --lines 10000000

bench-generate: install
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache spark-warehouse
