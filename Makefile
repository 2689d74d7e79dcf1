# crm-metrics: the two commands a new user runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Spark's JVM packages (Delta Lake, S3A + AWS SDK modules, PostgreSQL JDBC), copied by Maven from
# Maven Central as infra/spark/pom.xml pins them; get_spark passes them as spark.jars.
JARS := .jars
JARS_STAMP := $(JARS)/.installed
# pip on these machines warns about missing local mirrors; keep the output readable
PIPQUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
APT_PACKAGES := postgresql chromium

.PHONY: demo test test-slow test-all test-tooling install jars system-deps java maven lint typecheck unit bench bench-generate docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(PIPQUIET)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]' $(PIPQUIET)
	$(BIN)/pip check
	touch $(STAMP)

$(JARS_STAMP): infra/spark/pom.xml
	@$(MAKE) --no-print-directory maven
	rm -rf $(JARS)
	mvn -q -B -f infra/spark/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS)
	touch $(JARS_STAMP)

jars: $(JARS_STAMP)

install: $(STAMP) $(JARS_STAMP)

# Java 17 for Spark; PostgreSQL server and JDBC driver for the warehouse tests (Debian packages).
java:
	@command -v java >/dev/null || { apt-get update -q && apt-get install -y -q openjdk-17-jre-headless; }

maven: java
	@command -v mvn >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven; }

system-deps: java
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null; then \
		echo "installing $(APT_PACKAGES)"; apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES); \
	fi

# 1) Generate a sample warehouse (DuckDB, ./data) and run the pipeline for its last day.
demo: install java
	$(BIN)/crm-metrics generate --customers 20000 --start 2024-01-01 --end 2024-12-31 --seed 7
	$(BIN)/crm-metrics run --date 2024-12-31
	@echo "outputs: DuckDB marts in data/warehouse.duckdb (schema marts), lake in data/lake, Data Docs in data/lake/quality/data_docs/index.html"

# 2) Lint, type-check and run the suite against real DuckDB, PostgreSQL, Spark, Delta, Airflow, GE
# and S3: every unit and contract test plus one end-to-end run of each guarantee (the DAG on
# PostgreSQL, under a real scheduler, the lake on S3, a rerun keeping its history, the quarantine). Two workers, one file
# each at a time: module and session fixtures stay within a worker.
# --no-loadscope-reorder: files start in tests/conftest.py's order (heaviest first), not by test count
PYTEST := $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25
test: install system-deps lint typecheck
	$(PYTEST) -m "not slow and not tooling"

# The longer end-to-end scenarios (marker `slow`: backfills, kills, retries, the cluster, Spark
# Connect, maintenance; about 90 minutes on 2 cores), left out of `make test` to keep it short.
test-slow: install system-deps
	$(PYTEST) -m "slow and not tooling"

# Everything: `make test`'s tests, the slow ones and the developer tools' cluster checks.
test-all: install system-deps lint typecheck
	$(PYTEST)

# The developer tools' cluster checks (about 15 minutes on 2 cores), left out of `make test`.
test-tooling: install system-deps
	$(BIN)/pytest -q -m tooling

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy jobs schemas dags devtools

unit: install
	$(BIN)/pytest -q tests/unit

bench: install java
	$(BIN)/crm-metrics bench --lines 1000000
	$(BIN)/crm-metrics bench --lines 10000000

bench-generate: install
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf data .jars .pytest_cache .mypy_cache .ruff_cache spark-warehouse
