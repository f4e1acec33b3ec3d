# ShopRank developer entry points. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
# Every recipe that runs the stack exports the paths the settings object derives (one source of truth).
STACK_ENV = eval "$$($(BIN)/shoprank env)"
# The demo processes this day; Airflow stamps the run with the next day (see dags/shoprank_daily.py).
RUN_DATE ?= $(shell $(BIN)/python -c 'from shoprank.settings import get_settings; print(get_settings().default_run_date)' 2>/dev/null)
PYTEST_ARGS ?=
# PROFILE=local|services|cluster picks the settings profile of every target (as SHOPRANK_PROFILE does).
ifdef PROFILE
export SHOPRANK_PROFILE := $(PROFILE)
endif

.PHONY: help setup demo test test-backfill bench-dag lint format typecheck pipeline dag-test airflow-init airflow backfill serve rank models promote rollback bench-train bench bench-data bench-scale data-movielens data-import bench-history bench-serving bench-retrieval replay docs quarantine status feast-ui services-up services-down dask-up dask-down stream-worker bench-stream bench-experiments bench-loop labelstudio-install labelstudio spark-install bench-warehouse bench-labels system-deps clean

help: ## list every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## install uv and the locked environment into .venv
$(VENV)/.installed: pyproject.toml uv.lock
	@echo "==> [setup] installing uv $(UV_VERSION)"
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@echo "==> [setup] syncing .venv from uv.lock (compiled bytecode; ~1-3 min on a cold cache)"
	@$(PYTHON) -m uv sync --frozen --compile-bytecode
	@touch $@
	@echo "==> [setup] done"

demo: setup airflow-init ## set up, run shoprank_daily end to end, serve the model, rank a feed, stop
	@bash scripts/demo.sh

system-deps: ## apt-get what the tests drive: chromium + chromedriver (browser test), docker-compose (config check)
	@bash scripts/system-deps.sh

test: setup system-deps ## set up and run the test suite (real dbt, Feast, Airflow, BentoML), all but the backfill and profile suites
	@echo "==> [test] pytest -m 'not backfill and not profiles' $(PYTEST_ARGS)"
	@$(BIN)/pytest -m "not backfill and not profiles" $(PYTEST_ARGS)

test-profiles: setup system-deps services-up labelstudio-install spark-install ## heavy profile suites: Celery workers, Spark, Dask, the services profile end to end (CI runs it)
	@echo "==> [test-profiles] pytest -m profiles $(PYTEST_ARGS)"
	@$(BIN)/pytest -m profiles $(PYTEST_ARGS)

test-backfill: setup ## the 3-day Airflow backfill test on a real scheduler (~12 min; CI runs it after make test)
	@echo "==> [test-backfill] pytest -m backfill $(PYTEST_ARGS)"
	@$(BIN)/pytest -m backfill $(PYTEST_ARGS)

lint: setup ## ruff check + format check + the layer contract (import-linter: imports point down only)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/lint-imports --no-cache

format: setup ## ruff format + autofix
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

typecheck: setup ## mypy over the packages
	@$(BIN)/mypy

pipeline: setup ## run every pipeline step without Airflow (RUN_DATE=YYYY-MM-DD)
	@$(STACK_ENV); $(BIN)/shoprank run --run-date $(RUN_DATE)

airflow-init: setup ## prepare Airflow: login, metadata DB (SQLite, or PostgreSQL on the services profile), migrations
	@echo "==> [airflow] login file, metadata DB, migrations"
	@$(BIN)/shoprank airflow-init > /dev/null

dag-test: airflow-init ## run shoprank_daily once in-process with `airflow dags test` (RUN_DATE=YYYY-MM-DD)
	@$(STACK_ENV); $(BIN)/airflow dags test shoprank_daily \
		"$$($(BIN)/python -c 'import datetime,sys; print(datetime.date.fromisoformat(sys.argv[1]) + datetime.timedelta(days=1))' $(RUN_DATE))"

backfill: setup ## re-run shoprank_daily for days START..END (YYYY-MM-DD, inclusive) via Airflow's backfill; `make airflow` running, DAG unpaused
	@$(STACK_ENV); $(BIN)/shoprank backfill --start "$(START)" --end "$(END)"

airflow: airflow-init ## start Airflow (UI on 127.0.0.1:8080, scheduler, LocalExecutor; PROFILE=cluster: CeleryExecutor, 2 workers); login required
	@bash scripts/airflow.sh

serve: setup ## serve the latest registered ranker on 127.0.0.1 (BentoML; Swagger UI at /)
	@$(BIN)/shoprank serve

rank: setup ## ask the running service for a feed (USER_ID=u000001)
	@$(BIN)/shoprank rank --user-id $${USER_ID:-u000001}

models: setup ## list registered models with their holdout metrics
	@$(BIN)/shoprank models

status: setup ## the home's state: latest raw day, quarantine, published snapshot, champion, last gates, service
	@$(STACK_ENV); $(BIN)/shoprank status

# Feast's web UI reads the registry the active profile's feature_store yaml names (feast-apply writes it).
FEAST_UI_PORT ?= 8888
feast-ui: setup ## Feast's web UI for the active profile's registry on http://127.0.0.1:8888 (FEAST_UI_PORT to change)
	@$(BIN)/shoprank feast-ui --port $(FEAST_UI_PORT)

promote: setup ## champion/challenger gate on the run's challenger (TAG=name:version to pick one, FORCE=1 to override)
	@$(STACK_ENV); $(BIN)/shoprank promote --run-date $(RUN_DATE) $(if $(TAG),--tag $(TAG)) $(if $(FORCE),--force)

rollback: setup ## restore the previous champion (serving picks it up on reload / restart)
	@$(STACK_ENV); $(BIN)/shoprank rollback

bench-dag: setup services-up ## a day's wall time on shoprank run, the LocalExecutor and the CeleryExecutor, with Airflow's overhead share (BENCH_DAG_ARGS="--events 10000000")
	@$(BIN)/python -m benchmarks.bench_dag $(BENCH_DAG_ARGS)

bench-train: setup ## training throughput: XGBoost vs LightGBM lambdarank at 1M and 10M rows (BENCH_TRAIN_ARGS=...)
	@$(BIN)/python -m benchmarks.bench_train $(BENCH_TRAIN_ARGS)

services-up: setup ## start PostgreSQL and Redis on loopback for the services profile (apt-get installs if absent)
	@bash scripts/services.sh up

stream-worker: setup ## consume the services profile's event stream: session features pushed to the online store (Ctrl-C stops)
	@$(STACK_ENV); $(BIN)/shoprank stream-worker

bench-stream: setup ## print /events -> stream -> worker -> online store events/s, and click-to-/rank freshness p50/p99
	@$(BIN)/python -m benchmarks.bench_stream $(BENCH_STREAM_ARGS)

labelstudio-install: setup ## install Label Studio (pinned) into its own venv under the home, not .venv (minutes the first time)
	@$(STACK_ENV); $(BIN)/shoprank labels studio install

spark-install: setup ## install the `spark` dbt target's own venv (<home>/venvs/spark: dbt-spark[session] + pyspark, pinned), not .venv
	@$(STACK_ENV); $(BIN)/shoprank spark-install

labelstudio: labelstudio-install ## start Label Studio on 127.0.0.1 (free port): own SQLite DB under the home, admin user + API token; prints the URL
	@$(STACK_ENV); $(BIN)/shoprank labels studio start

bench-labels: setup ## print the labelling figures: label accuracy by method and overlap, pre-label speed, routing, active vs random, search NDCG@10 human vs click
	@$(BIN)/python -m benchmarks.bench_labels $(BENCH_LABELS_ARGS)

bench-experiments: setup ## print the experiment analysis on the simulator: A/A false-positive rate, model vs popularity, interleaving vs A/B sample sizes
	@$(BIN)/python -m benchmarks.bench_experiments $(BENCH_EXPERIMENTS_ARGS)

bench-loop: setup ## closed-loop marketplace: model-only vs rules vs learned cold start vs oracle over 28 days (table, HTML report, run time)
	@$(BIN)/python -m benchmarks.bench_loop $(BENCH_LOOP_ARGS)

services-down: setup ## stop the PostgreSQL/Redis that services-up started (pre-existing servers are left alone)
	@bash scripts/services.sh down

dask-up: setup ## start a Dask scheduler + workers on loopback for the cluster profile's train step (xgboost.dask); prints the settings export
	@$(BIN)/python -m orchestration.dask_cluster up

dask-down: setup ## stop the Dask scheduler and workers dask-up started (a scheduler it found running is left alone)
	@$(BIN)/python -m orchestration.dask_cluster down

bench: setup ## print benchmark figures: simulator, pipeline steps, /rank latency and throughput (var/bench)
	@$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-data: setup ## data-scale figures: simulate 1M and 10M events (time, peak RSS), dbt build on 10M vs raw DuckDB
	@$(BIN)/python -m benchmarks.bench_data $(BENCH_DATA_ARGS)

bench-warehouse: setup spark-install ## the same dbt build on DuckDB and on Spark local[2] (tiny test world; BENCH_WAREHOUSE_ARGS="--sizes tiny,100000"): wall, CPU, events and mart rows per second
	@$(BIN)/python -m benchmarks.bench_warehouse $(BENCH_WAREHOUSE_ARGS)

bench-scale: setup ## every `shoprank run` step as its own process at 1M and 10M events (+ next day): wall, CPU, peak RSS
	@$(BIN)/python -m benchmarks.bench_scale $(BENCH_SCALE_ARGS)

data-movielens: setup ## fetch MovieLens-100K (recbole wheel; never committed) and map it onto the raw contract
	@export SHOPRANK_HOME="$${SHOPRANK_HOME:-$(CURDIR)/var/movielens}" \
		SHOPRANK_SIMULATOR__CATEGORIES="$${SHOPRANK_SIMULATOR__CATEGORIES:-19}"; \
		$(STACK_ENV); $(BIN)/python -m producers.adapters.movielens; \
		echo "==> raw data in $$SHOPRANK_HOME/raw; build it with the same env, e.g. SHOPRANK_HOME=$$SHOPRANK_HOME" \
			"SHOPRANK_SIMULATOR__CATEGORIES=19 $(BIN)/shoprank build-warehouse --run-date <last_day above>"

data-import: setup ## import any interactions table (INPUT=file MAPPING=mapping.yaml [ITEMS= USERS=]) as the raw data
	@test -n "$${INPUT:-}" || { echo "usage: make data-import INPUT=interactions.csv MAPPING=mapping.yaml" >&2; exit 2; }
	@export SHOPRANK_HOME="$${SHOPRANK_HOME:-$(CURDIR)/var/import}"; $(STACK_ENV); \
		$(BIN)/shoprank import-interactions "$(INPUT)" $(if $(MAPPING),--mapping "$(MAPPING)") \
			$(if $(ITEMS),--items "$(ITEMS)") $(if $(USERS),--users "$(USERS)")

bench-history: setup ## build-warehouse time on 10 years of daily imported interactions (BENCH_HISTORY_ARGS=...)
	@$(BIN)/python -m benchmarks.bench_history $(BENCH_HISTORY_ARGS)

bench-retrieval: setup ## recall@100/@500 today vs text + learned recall vs the funnel; pre-ranker recall, NDCG; bm25s vs tantivy
	@$(BIN)/python -m benchmarks.bench_retrieval $(BENCH_RETRIEVAL_ARGS)

bench-serving: setup ## /rank p50/p95/p99 + throughput vs the naive path and the model alone (BENCH_ARGS=--funnel: vs the funnel)
	@$(BIN)/python -m benchmarks.bench_serving $(BENCH_ARGS)

replay: setup ## replay simulated users against the running service: model+rules vs model vs popularity (REQUESTS=200)
	@$(BIN)/shoprank replay --requests $${REQUESTS:-200}

docs: setup ## build Great Expectations Data Docs and dbt docs under the settings home; print the paths to open
	@$(STACK_ENV); $(BIN)/python -c 'from orchestration.quality_docs import main; main()'

quarantine: setup ## list raw partitions held in quarantine (release: shoprank quarantine release --table T --dt D)
	@$(BIN)/shoprank quarantine list

clean: ## delete generated data, models and Airflow home (var/); keeps .venv
	rm -rf var dbt_project/target dbt_project/logs
