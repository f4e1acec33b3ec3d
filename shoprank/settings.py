"""The one typed settings object. Every path, host and knob in ShopRank derives from here.

Values come from, in order: environment variables prefixed ``SHOPRANK_`` (nested with ``__``), a ``.env`` file in
the working directory (ignored by git), then the defaults below. ``SHOPRANK_PROFILE`` selects the profile.
Nothing here touches the disk at import time; :meth:`Settings.ensure_dirs` creates folders when a step needs them.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shoprank.session import SessionConfig

# The repository checkout this package lives in (editable install). Override with SHOPRANK_PROJECT_ROOT.
_DEFAULT_PROJECT_ROOT = Path(__file__).resolve().parents[1]

Profile = Literal["local", "services", "cluster"]

# Telemetry of every tool in the stack is off: nothing phones home from a pipeline run.
TELEMETRY_OFF = {
    "BENTOML_DO_NOT_TRACK": "true",
    "FEAST_USAGE": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


# Imported once by the Airflow scheduler's forkserver (see Settings.runtime_env); every task process inherits them.
# Not great_expectations: where pyspark 4 is installed, GX imports its connect module, whose doctest guard calls
# sys.exit(0) in a process whose __main__ has no file (the forkserver) when grpcio-status is missing; that killed the
# forkserver and every LocalExecutor task ("EOFError: unexpected EOF"). The gate tasks import GX themselves.
AIRFLOW_TASK_PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "cosmos.operators.local",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "pandas",
    "pyarrow.parquet",
    "feast",
    "xgboost",
    "matplotlib.pyplot",
)


class SimulatorSettings(BaseModel):
    """Size and shape of the simulated marketplace (see producers.simulator)."""

    seed: int = 42
    # The simulated calendar starts here: day D's partitions depend on (seed, D, sizes) only, whatever the run date.
    start_date: date = date(2026, 1, 1)
    days: int = Field(7, ge=2, description="days of history written, ending at the run's day")
    users: int = Field(2000, ge=10)
    sellers: int = Field(100, ge=2)
    items: int = Field(1000, ge=20)
    categories: int = Field(12, ge=2, le=99)
    requests_per_day: int = Field(2000, ge=10)
    slate_size: int = Field(20, ge=2)
    # Target events over the window (`shoprank simulate --events N`): sets requests per day and grows the world.
    # 0 keeps requests_per_day as set.
    events: int = Field(0, ge=0)
    # Visits (docs/simulator.md): a user's requests come in sessions of this many on average (geometric), a mean
    # request_gap_seconds apart, the intent switching with probability session_intent_switch per request within a
    # session. 1: every request a visit of its own, uniform over the day (no session structure).
    session_requests: float = Field(1.0, ge=1)
    request_gap_seconds: float = Field(90.0, gt=0)
    session_intent_switch: float = Field(0.15, ge=0, le=1)


class OnlineGateSettings(BaseModel):
    """What an online experiment must show before its winning arm's model is promoted (`shoprank experiment decide`,
    quality/experiments/decision.py): the primary metric significantly better, no guardrail broken, a sound split,
    enough users and power."""

    primary_metric: str = "gmv_per_user"
    alpha: float = Field(0.05, gt=0, lt=1)
    # Metrics that must not drop significantly (the primary must not be bought with engagement).
    guardrail_metrics: list[str] = ["ctr", "purchases_per_request"]
    # Enough power: at 80% power the experiment could detect this relative change of the primary metric.
    max_rel_mde: float = Field(0.10, gt=0)
    min_users_per_arm: int = Field(200, ge=1)
    # Serving guardrails, treatment arm vs control arm, from the requests log.
    max_latency_p99_ratio: float = Field(1.2, ge=1)
    max_degraded_share_increase: float = Field(0.01, ge=0)
    # Users seen in several arms (the split changed mid-experiment) are left out; more than this share: invalid.
    max_users_in_several_arms_share: float = Field(0.01, ge=0)


class GateSettings(BaseModel):
    """Champion/challenger gate: what a challenger must show, on the champion's same holdout, to be promoted."""

    # The challenger's NDCG@k must exceed the champion's (both scored on the challenger's holdout) by this much.
    margin: float = Field(0.002, ge=0)
    # Per slice (cold-start users, new items, new sellers) with enough requests, the challenger may trail the
    # champion by at most this much (a first model, judged against popularity, has its slices reported only).
    slice_tolerance: float = Field(0.03, ge=0)
    min_slice_requests: int = Field(30, ge=1)
    # Below this many holdout requests with a click the holdout metrics are noise: training warns (card
    # `warnings`) and the gate refuses to promote (FORCE overrides). About 65% of requests get a click: a test-size
    # run (500 requests a day) had 323.
    min_holdout_requests_with_click: int = Field(50, ge=1)
    online: OnlineGateSettings = OnlineGateSettings()


class TrainingSettings(BaseModel):
    """Ranker hyperparameters and evaluation choices; code reads them, never hard-codes them."""

    model_name: str = "shoprank_ranker"
    # The Feast feature service the ranker trains with (ranker_v1 / v2 / v3, feature_repo/feature_services.py); v3
    # beat v1 by +0.0175 holdout NDCG@10 at default sizes (serving/README.md has the comparison).
    feature_service: str = "ranker_v3"
    holdout_days: int = Field(1, ge=1, description="the last N days of examples are the holdout")
    # The first simulated days have no history behind them (every user cold, every count zero): skip them.
    burn_in_days: int = Field(1, ge=0)
    n_estimators: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    ndcg_k: int = 10
    seed: int = 7
    # What the served score targets: "ndcg" ranks by the LambdaMART ranker; "gmv" by pCTR x pCVR x price from the
    # CTR and CVR models (trained every run anyway, for calibration and click/purchase AUC).
    objective: Literal["ndcg", "gmv"] = "ndcg"
    min_child_weight: float = 1.0
    subsample: float = Field(0.9, gt=0, le=1)
    colsample_bytree: float = Field(0.9, gt=0, le=1)
    reg_lambda: float = 1.0
    # Early stopping watches NDCG on the last training day (the validation split); the final model is refit on
    # every training day with the best number of trees. Validation NDCG is noisy and flat: be patient.
    early_stopping_rounds: int = Field(50, ge=1)
    # Floor on the trees early stopping may pick (capped by n_estimators): on a small validation day NDCG peaks on
    # noise after 1-2 trees, which is a stump, not a ranker.
    min_trees: int = Field(20, ge=1)
    validation_days: int = Field(1, ge=1)
    refit_on_validation: bool = True
    classifier_n_estimators: int = 150
    # Share of non-clicked impressions kept for fitting (1.0: all, no sampling). Kept negatives weigh 1/rate in the
    # CTR model; the ranker keeps every row of a clicked request (README, Models). Validation and holdout are whole.
    negative_sample_rate: float = Field(1.0, gt=0, le=1)
    # At scale (issue 13): when the fit and validation days hold more non-clicked impressions than this, the CTR
    # model keeps about this many of them (the rate drops below negative_sample_rate, weights stay 1/rate); when
    # they hold more impressions than max_ranker_rows, the ranker learns from a uniform sample of whole requests of
    # about that many rows. None: no cap. Default-size worlds stay below both (nothing sampled); the card records
    # both rates (README, Models).
    max_fit_negatives: int | None = Field(500_000, ge=1000)
    max_ranker_rows: int | None = Field(1_000_000, ge=1000)
    # Distributed training (issue 18): the Dask scheduler the train step fits the ranker, CTR and CVR models through
    # (xgboost.dask, training/dask_fit.py), e.g. tcp://dask-scheduler:8786. Empty: one process. The cluster
    # profile's deployments set it (infra/); a scheduler that does not answer in dask_connect_timeout_s fails the
    # step with this setting's name.
    dask_scheduler_address: str = ""
    dask_connect_timeout_s: float = Field(30.0, gt=0)
    gate: GateSettings = GateSettings()


class PrerankGateSettings(BaseModel):
    """The pre-ranker's publish gate (training/preranker_gate.py): the `train-preranker` step publishes a pre-ranker
    to serving only if, on ``requests`` holdout requests per surface (each pool: the request's impressions plus the
    holdout day's other shown items, up to ``recall.prerank_candidates``), its best ``recall.prerank_keep`` hold at
    least these shares of the final ranker's top ``top``, and of the clicked items ``min_clicks_kept_ratio`` times
    what the final ranker's own cut holds (without a final ranker: a random cut's). Otherwise the served pre-ranker
    stays (none: today's path). 0 turns a check off; a surface with fewer than ``min_requests`` is not judged.
    Defaults from the default world's pre-ranker (docs/retrieval.md, "The pre-ranker's gate, and its agreement
    re-measured")."""

    requests: int = Field(200, ge=1)
    top: int = Field(20, ge=1)
    # Default world, 2026-11-30: the distilled 40-tree pre-ranker 1.000 / 1.000 (feed / search) and clicks ratio
    # 1.01 / 1.01; one tree of depth 1: 0.936 / 0.881 and 0.865 / 0.831, refused on all four checks.
    min_recall_feed: float = Field(0.95, ge=0, le=1)
    min_recall_search: float = Field(0.9, ge=0, le=1)
    min_clicks_kept_ratio: float = Field(0.9, ge=0)
    min_requests: int = Field(20, ge=1)


class RecallSettings(BaseModel):
    """Learned and text recall (retrieval/ builds the indexes, serving/candidates.py uses them)."""

    # Learned recall from each user's clicks in the published training window: implicit ALS (user and item factors)
    # or item2vec (gensim Word2Vec over the click sequences; window, epochs).
    model: Literal["als", "item2vec"] = "als"
    embedding_dim: int = Field(32, ge=2)
    regularization: float = Field(0.05, ge=0)
    iterations: int = Field(20, ge=1)
    window: int = Field(5, ge=1)
    epochs: int = Field(20, ge=1)
    seed: int = 7
    # "flat": exact inner product (faiss IndexFlatIP); "hnsw": approximate, for catalogues of millions of items.
    ann: Literal["flat", "hnsw"] = "flat"
    # Index versions kept under <home>/retrieval/ (the served one included).
    versions_kept: int = Field(3, ge=2)
    # Shares of the candidate budget: learned neighbours on the feed; text matches on a search with a query.
    embedding_share: float = Field(0.3, ge=0, le=1)
    text_share: float = Field(0.5, ge=0, le=1)
    # On the feed, first: the best items by quality x the user's category lift (serving/candidates.py), this share of
    # the budget (0: off). 0.9: at 1M events it held more of the next day's feed clicks than every other source.
    affinity_share: float = Field(0.9, ge=0, le=1)
    # Text index library: bm25s (the default; tantivy measured against it in docs/retrieval.md).
    text_engine: Literal["bm25s", "tantivy"] = "bm25s"
    # The funnel (issue 16): with ``prerank`` on, the `train-preranker` step trains a pre-ranker (training/preranker.py)
    # and serving retrieves ``prerank_candidates``, the pre-ranker keeps the best ``prerank_keep`` for the final ranker.
    # Off (or no pre-ranker): today's path, ``serving.default_candidate_count`` straight to the final ranker. Off by
    # default: at 1M events the pre-ranker, even with the query match, cuts search recall and NDCG (docs/retrieval.md);
    # a trained one reaches serving only past ``prerank_gate``.
    prerank: bool = False
    prerank_candidates: int = Field(5000, ge=1)
    prerank_keep: int = Field(500, ge=1)
    # Per retrieval source, the share of ``prerank_keep`` its best pre-ranked candidates keep before the rest go by
    # score (serving/prerank.py quota_cut), e.g. {"text": 0.3}. Empty: by score alone.
    prerank_quotas: dict[str, float] = Field(default_factory=dict)
    # The pre-ranker: a small LambdaMART over item-side features, the category affinity and the embedding score,
    # fitted on the last ``prerank_train_days`` days before the holdout with an ALS fitted on the days before them.
    # 20 trees (was 40): a feed's predict over 5,000 rows costs half, the 1M-event gate passes (docs/retrieval.md)
    prerank_trees: int = Field(20, ge=1)
    prerank_depth: int = Field(4, ge=1)
    prerank_train_days: int = Field(2, ge=1)
    # Add to each training request 20 catalogue items as non-clicks (training/preranker.py with_catalogue_negatives):
    # at 1M events the funnel's 500 then hold more clicks but agree less with the final ranker (docs/retrieval.md).
    prerank_sampled_negatives: bool = False
    # What the pre-ranker learns to rank by: ``clicks`` (the impressions' click/purchase relevance) or ``distill``
    # (imitate the final ranker: each training impression's label is the score of the final ranker trained in the same
    # run before `train-preranker`, else the champion; training/preranker.py teacher). The card records it. distill by
    # default: at 1M events its recall of the final ranker's top 20 is 0.961 vs 0.949 (search 0.878 vs 0.840) and its
    # 500 keep as many of the clicks (docs/retrieval.md).
    prerank_target: Literal["clicks", "distill"] = "distill"
    # What a trained pre-ranker must show on the holdout before serving gets it (SHOPRANK_RECALL__PRERANK_GATE__...).
    prerank_gate: PrerankGateSettings = PrerankGateSettings()


class ServingSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3000
    default_k: int = Field(10, ge=1)
    max_k: int = Field(100, ge=1)
    max_candidates: int = Field(2000, ge=1)
    # Without candidates in the request, the service retrieves this many (serving/candidates.py).
    default_candidate_count: int = Field(500, ge=1)
    # Guards POST /admin/reload; no default in the repo: export SHOPRANK_SERVING__ADMIN_TOKEN (unset: reload off).
    admin_token: SecretStr | None = None
    # The one versioned business-rules file (None: <project_root>/serving/rules.yaml).
    rules_path: Path | None = None
    # The versioned experiments file (None: <project_root>/serving/experiments.yaml; missing file: no experiment).
    experiments_path: Path | None = None
    # Seconds between checks of the marts' files for a newer snapshot (item cache, retrieval); 0: only on reload.
    cache_refresh_seconds: float = Field(60.0, ge=0)
    # Request/impression logs: flushed to parquet when this many rows are buffered, or after this many seconds.
    log_requests: bool = True
    log_buffer_rows: int = Field(5000, ge=1)
    log_flush_seconds: float = Field(10.0, gt=0)
    # After the serving state loads (and after each reload or refresh swaps it), collect once and gc.freeze() what is
    # alive, so the cyclic GC's gen-2 passes skip the caches and models (serving/heap.py: the /rank tail).
    gc_freeze: bool = True
    # The service's own log (access lines, warnings, errors; serving/logs.py): a file rotated at this size, keeping
    # this many older files (None: <home>/logs/serve.log; 0 bytes: no file, BentoML's console logging unchanged).
    service_log_path: Path | None = None
    service_log_max_bytes: int = Field(10_000_000, ge=0)
    service_log_backups: int = Field(5, ge=1)
    # A request body above this size is refused with 413 before it is parsed (2,000 candidate ids take ~140 kB).
    max_body_bytes: int = Field(1_000_000, ge=1024)
    # POST /events: events per call (a body of 1,000 events takes ~250 kB), and how far an event's timestamp may be
    # behind the service's clock (a day: the daily pipeline still sees it) or ahead of it (clock skew); an event
    # outside that window is rejected, the rest of the batch accepted.
    max_events_per_call: int = Field(1000, ge=1)
    max_event_age_seconds: float = Field(86_400.0, gt=0)
    max_event_ahead_seconds: float = Field(300.0, ge=0)
    # Where the deploy step finds the running service (None: http://<host>:<port>).
    url: str | None = None

    @property
    def base_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


class StreamingSettings(BaseModel):
    """The real-time path (serving/sessions.py, serving/stream_worker.py): events accepted by POST /events update
    each user's session state, whose features are pushed to the online store (Feast push source)."""

    # "embedded": the service updates session state in process and pushes to the online store itself (no server);
    # "redis": the service XADDs events to a Redis stream that `shoprank stream-worker` consumes. None: embedded on
    # the local profile, redis on the others.
    mode: Literal["embedded", "redis"] | None = None
    # Every Redis key of the path starts with this (the stream, session hashes, heartbeat): tests use their own.
    key_prefix: str = "shoprank:rt"
    # The stream is trimmed to about this many entries (XADD MAXLEN ~): about a minute at 20,000 events/s.
    stream_maxlen: int = Field(1_000_000, ge=1000)
    group: str = "session-worker"
    # This worker's name in the consumer group (None: <hostname>-<pid>).
    consumer: str | None = None
    # XREADGROUP COUNT and BLOCK: one read, one Feast push and one Redis transaction per batch.
    batch_size: int = Field(2000, ge=1)
    block_ms: int = Field(100, ge=1)
    # On start the worker claims entries another consumer read and did not acknowledge for this long (crash).
    claim_idle_ms: int = Field(30_000, ge=0)
    # A user's session state (a Redis hash, bounded by settings.session's caps) expires after this long without
    # events (it also remembers the event ids that make a re-sent event count once).
    session_ttl_seconds: int = Field(7200, ge=60)
    # The service keeps events Redis refused (down) in memory, at most this many, and re-sends them when it is back
    # (they are in the raw events log in any case).
    backlog_events: int = Field(200_000, ge=0)
    # The worker writes a heartbeat every second; older than this, /rank serves without session features.
    heartbeat_stale_seconds: float = Field(5.0, gt=0)
    # Embedded mode: the in-process pusher wakes at most this often (seconds) to push what changed.
    embedded_push_interval: float = Field(0.02, gt=0)
    redis_timeout_seconds: float = Field(0.5, gt=0)


class AirflowSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    parallelism: int = 4
    # The UI and API always require a login. The password comes from the environment
    # (SHOPRANK_AIRFLOW__ADMIN_PASSWORD); when unset, `make airflow` generates one into the Airflow home.
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    # Where task processes reach the API server; defaults to http://host:port (set it when they differ, e.g. in
    # containers where the API server listens on 0.0.0.0 under its own host name).
    base_url: str | None = None
    # How the daily DAG runs dbt. "build": one task, the whole `dbt build` (the CLI's function; a failure names its
    # model or test in the log, and clearing the task rebuilds the day). "model": one cosmos task per model along
    # dbt's lineage (a retry starts at the failed model), at the price of a task start per model (`make bench-dag`).
    dbt_tasks: Literal["build", "model"] = "build"
    # None: CeleryExecutor on the cluster profile, LocalExecutor otherwise.
    executor: Literal["LocalExecutor", "CeleryExecutor"] | None = None
    # CeleryExecutor queues the daily DAG routes its tasks to (the LocalExecutor ignores them). `make airflow
    # PROFILE=cluster` starts one worker on dbt_queue running one task at a time (the warehouse has a single
    # writer) and one on default_queue + training_queue running worker_concurrency tasks at once.
    default_queue: str = "default"
    dbt_queue: str = "dbt"
    training_queue: str = "training"
    worker_concurrency: int = Field(2, ge=1)
    # Celery's broker is the services' Redis (this db); every key it writes starts with celery_key_prefix (tests use
    # their own). Results go to the metadata database on PostgreSQL.
    celery_redis_db: int = Field(1, ge=0)
    celery_key_prefix: str = "shoprank:celery:"


class QualitySettings(BaseModel):
    """Data-quality gates (quality): raw volume band, drift thresholds, how much evidence to log."""

    # The run's day must hold between low x and high x the median event count of up to N previous days.
    volume_band_low: float = Field(0.5, gt=0)
    volume_band_high: float = Field(2.0, gt=0)
    volume_history_days: int = Field(7, ge=1)
    # Catalogue changes: an item re-emitted in a later partition may change its price by at most this factor (up or
    # down) against its previous definition; item_type, seller_id, category_id and created_ts never change.
    max_price_change_ratio: float = Field(3.0, gt=1)
    # A purchase must follow an impression and a click of the same user and item in its own partition or in up to N
    # earlier ones (a click before midnight, the purchase after).
    funnel_lookback_days: int = Field(1, ge=0)
    # Population stability index of each model feature, run's day vs the training window.
    drift_warn_psi: float = Field(0.1, ge=0)
    drift_block_psi: float = Field(0.25, ge=0)
    drift_bins: int = Field(10, ge=2)
    # Reference = the last N days of the training window (0: all of it after burn-in). The simulated history fills
    # its 7/30-day windows day by day, so windowed counts grow across the window; the latest days are comparable.
    drift_reference_days: int = Field(1, ge=0)
    # Offending values shown per failed expectation (task log, results JSON).
    sample_size: int = Field(5, ge=1)
    # Build GX Data Docs after every validation (HTML under quality_dir/gx).
    build_data_docs: bool = True


class ResourceSettings(BaseModel):
    """What one pipeline step may use. Every DuckDB connection ShopRank opens (the gates, drift, dbt's profile) is
    capped at ``duckdb_share`` of the budget and spills to ``<home>/tmp/duckdb`` beyond it; the rest is for Python
    (frames, libraries). Steps that stream size their chunks with :meth:`chunk_rows`. A step that cannot finish
    within the budget fails naming ``memory_budget_gib`` (shoprank.resources), not the kernel's OOM killer."""

    # The issue-13 target: no step of `shoprank run` above 6 GiB peak RSS at 10M events.
    memory_budget_gib: float = Field(6.0, gt=0)
    # DuckDB's memory_limit as a share of the budget (DuckDB's RSS runs somewhat above its limit).
    duckdb_share: float = Field(0.6, gt=0, le=1)

    @property
    def memory_budget_bytes(self) -> int:
        return int(self.memory_budget_gib * 1024**3)

    def chunk_rows(self, bytes_per_row: int, share: float = 0.25, minimum: int = 1000) -> int:
        """Rows of ``bytes_per_row`` bytes that fit in ``share`` of the budget (at least ``minimum``)."""
        if bytes_per_row <= 0 or not 0 < share <= 1:
            raise ValueError(f"chunk_rows needs bytes_per_row > 0 and 0 < share <= 1, got {bytes_per_row}, {share}")
        return max(minimum, int(self.memory_budget_bytes * share) // bytes_per_row)


class LabellingSettings(BaseModel):
    """Relevance labelling for search (labelling/): Label Studio on loopback, what to label each day, crowd QC."""

    # Label Studio runs from its own venv under <home>/labelstudio (never the project's .venv), pinned here.
    labelstudio_version: str = "1.23.2"
    # Its venv (None: <home>/labelstudio/venv); tests reuse the one `make labelstudio-install` made in the default home.
    venv: Path | None = None
    host: str = "127.0.0.1"
    # 0: `make labelstudio` picks a free port and writes it to <home>/labelstudio/url.
    port: int = Field(0, ge=0)
    admin_email: str = "labelling-admin@shoprank.local"
    # Secrets from the environment only (SHOPRANK_LABELLING__ADMIN_PASSWORD / __API_TOKEN); generated when unset.
    admin_password: SecretStr | None = None
    api_token: SecretStr | None = None
    project_title: str = "ShopRank search relevance"
    # (query, item) pairs sampled per day: stratified share, active-learning picks, gold questions mixed in.
    daily_budget: int = Field(300, ge=1)
    active_share: float = Field(0.3, ge=0, le=1)
    gold_share: float = Field(0.1, ge=0, le=1)
    # Positions of the ranker's slate the stratified sample spreads over (1-3, 4-10, 11+).
    position_strata: tuple[int, ...] = (3, 10)
    # Adaptive overlap: start with this many labels per task, add more (up to the max) only where they disagree.
    initial_overlap: int = Field(1, ge=1)
    max_overlap: int = Field(5, ge=1)
    # A labeller whose accuracy on gold is below this (or whose agreement with the aggregate is near chance) is
    # flagged careless and down-weighted.
    careless_gold_accuracy: float = Field(0.45, ge=0, le=1)
    seed: int = 19


class SparkSettings(BaseModel):
    """The dbt `spark` target (the cluster profile's warehouse): dbt-spark's session method, PySpark inside a dbt
    process run from its own venv (warehouse/spark.py; `make spark-install`), never from .venv, where pyspark's
    import could exit Airflow's forkserver. dbt-core there is the version .venv has."""

    pyspark_version: str = "3.5.7"  # Spark 3.5 runs on the machine's Java 17
    dbt_spark_version: str = "1.11.0"
    # Its venv (None: <home>/venvs/spark); tests reuse the one `make spark-install` made in the default home.
    venv: Path | None = None
    # local[N] runs Spark inside the dbt process with N cores; a cluster's master URL runs it there.
    master: str = "local[2]"
    driver_memory: str = "1g"
    # Each executor's heap on a Spark cluster (infra/: the spark-worker containers); local[N] starts no executor.
    executor_memory: str = "1g"
    # Shuffle partitions: Spark's default 200 is for clusters; a few per core suit local[2].
    shuffle_partitions: int = Field(4, ge=1)
    # Schema (Spark database) of the models; the raw sources are views in database `raw`.
    schema_name: str = "shoprank"


class AlertSettings(BaseModel):
    """Where task failures are announced: always a log line and <home>/alerts/alerts.jsonl, optionally a webhook."""

    # A Slack-compatible incoming webhook ({"text": ...}); a secret, so it comes from the environment only.
    webhook_url: SecretStr | None = None
    timeout_seconds: float = 5.0


class LoopSettings(BaseModel):
    """The closed-loop marketplace (orchestration/loop.py: `shoprank loop`, `make bench-loop`)."""

    days: int = Field(28, ge=1, description="served days after the logged warm-up")
    # Production retrains daily; the data steps run every day regardless (features, stock, new items). 0: never
    # (the warm-up's champion serves the whole run: policies judged without the champion gate's promotions).
    retrain_every_days: int = Field(1, ge=0)
    # The cold-start prior predicts a new item's CTR / CVR over its first days, from items whose first days ended.
    prior_first_days: int = Field(3, ge=1)
    prior_lookback_days: int = Field(60, ge=1)
    prior_min_items: int = Field(20, ge=1, description="fewer past items: the prior is the catalogue's mean rates")
    # New-seller survival: a sale within this many days of the seller's arrival.
    survival_days: int = Field(7, ge=1)


class ServicesSettings(BaseModel):
    """Servers of the `services` profile (PostgreSQL, Redis), on loopback unless configured otherwise."""

    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "postgres"
    postgres_password: SecretStr | None = None
    airflow_database: str = "shoprank_airflow"
    feast_registry_database: str = "shoprank_feast"
    # The dbt `postgres` target: its database, the schema of the models, and raw tables in schema `raw`
    # (warehouse.build.load_raw_to_postgres loads them from the parquet partitions).
    warehouse_database: str = "shoprank_warehouse"
    warehouse_schema: str = "analytics"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    # `make dask-up` (orchestration/dask_cluster.py): the cluster profile's Dask scheduler and workers on loopback;
    # `make airflow PROFILE=cluster` points training.dask_scheduler_address at dask_address. Two one-thread workers
    # share a 2-core machine without oversubscribing it; memory "auto" splits the machine's memory between them.
    dask_host: str = "127.0.0.1"
    dask_port: int = 8786
    dask_dashboard_port: int = 8787
    dask_workers: int = Field(2, ge=1)
    dask_threads_per_worker: int = Field(1, ge=1)
    dask_worker_memory_limit: str = "auto"

    @property
    def dask_address(self) -> str:
        return f"tcp://{self.dask_host}:{self.dask_port}"

    def postgres_url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        password = f":{self.postgres_password.get_secret_value()}" if self.postgres_password else ""
        return f"{driver}://{self.postgres_user}{password}@{self.postgres_host}:{self.postgres_port}/{database}"

    @property
    def redis_connection_string(self) -> str:
        return f"{self.redis_host}:{self.redis_port},db={self.redis_db}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHOPRANK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    profile: Profile = "local"
    project_root: Path = _DEFAULT_PROJECT_ROOT
    # Everything generated (data, warehouse, feature store, models, Airflow home, reports) lives under here.
    home: Path | None = None
    # The simulated calendar ends here when no run date is given (the DAG passes its own logical date).
    default_run_date: date = date(2026, 1, 7)

    feast_project: str = "shoprank"
    dbt_target: str | None = None
    # What dbt writes to <home>/dbt/logs/dbt.log. "info": each node's start and result; "debug" adds every SQL
    # statement, which cost a quarter of the default world's next-day build's CPU samples (py-spy; docs/scale.md
    # "Session 12").
    dbt_log_level_file: Literal["debug", "info", "warn", "error", "none"] = "info"
    # Overrides DuckDB's memory_limit everywhere (e.g. "4GB"); None: resources.duckdb_share of the memory budget.
    # The warehouse build at 10M events peaked at 5.4 GiB uncapped.
    warehouse_memory_limit: str | None = None
    # DuckDB's max_vacuum_tasks for the dbt build: 0 (no vacuum) leaves a row group that lost rows to a day's
    # delete+insert as it is, deleted rows marked, instead of merging it with its neighbours at the checkpoint (the
    # serial tail of every incremental run: 0.7-0.9 s of the 10M next day; the file grew less without it over four
    # next days, docs/scale.md "Session 14"). A first build deletes nothing. DuckDB's default is 100.
    warehouse_vacuum_tasks: int = Field(0, ge=0)
    # Published mart snapshots kept (the served one included); older ones are deleted by `publish`. At least 2, so a
    # reader that resolved the previous pointer just before a publish still finds its files.
    published_snapshots_kept: int = Field(3, ge=2)

    simulator: SimulatorSettings = SimulatorSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    recall: RecallSettings = RecallSettings()
    streaming: StreamingSettings = StreamingSettings()
    # How user sessions are cut and bounded (shoprank/session.py): SHOPRANK_SESSION__GAP_SECONDS, ...
    session: SessionConfig = SessionConfig()
    airflow: AirflowSettings = AirflowSettings()
    services: ServicesSettings = ServicesSettings()
    alerts: AlertSettings = AlertSettings()
    quality: QualitySettings = QualitySettings()
    resources: ResourceSettings = ResourceSettings()
    labelling: LabellingSettings = LabellingSettings()
    spark: SparkSettings = SparkSettings()
    loop: LoopSettings = LoopSettings()

    # ---- derived paths -------------------------------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return (self.home or self.project_root / "var").resolve()

    @property
    def raw_dir(self) -> Path:
        """Immutable raw partitions: <raw_dir>/<table>/dt=YYYY-MM-DD/part-0.parquet."""
        return self.home_dir / "raw"

    @property
    def truth_dir(self) -> Path:
        """The simulator's hidden truth; nothing in the pipeline reads it (evaluation only)."""
        return self.home_dir / "truth"

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse" / "shoprank.duckdb"

    @property
    def marts_export_dir(self) -> Path:
        """The published marts, which Feast (offline sources), training, serving and monitoring read.

        A symlink to the newest published snapshot (``snapshots/<run_date>-<hash>/``): only the `publish` step, after
        every gate, moves it (warehouse.publish). dbt never writes here; it writes to :attr:`marts_build_dir`."""
        return self.home_dir / "warehouse" / "marts"

    @property
    def marts_build_dir(self) -> Path:
        """Where dbt's export post-hook writes each mart as it is built: the candidate the gates judge, never read by
        Feast, training or serving."""
        return self.home_dir / "warehouse" / "build"

    @property
    def marts_snapshots_dir(self) -> Path:
        """Published snapshots of the marts, one directory each with its manifest (warehouse.publish)."""
        return self.home_dir / "warehouse" / "snapshots"

    @property
    def streaming_mode(self) -> Literal["embedded", "redis"]:
        """Where accepted events go: settings.streaming.mode, else embedded on the local profile, Redis otherwise."""
        return self.streaming.mode or ("embedded" if self.profile == "local" else "redis")

    @property
    def duckdb_memory_limit(self) -> str:
        """DuckDB's memory_limit: warehouse_memory_limit if set, else resources.duckdb_share of the step's budget."""
        if self.warehouse_memory_limit:
            return self.warehouse_memory_limit
        return f"{max(1, int(self.resources.memory_budget_gib * self.resources.duckdb_share * 1024))}MiB"

    @property
    def duckdb_temp_dir(self) -> Path:
        """Where DuckDB spills beyond its memory_limit (under the home, not the working directory)."""
        return self.home_dir / "tmp" / "duckdb"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_root / "dbt_project"

    @property
    def dbt_target_name(self) -> str:
        # The services profile builds on PostgreSQL and exports the marts to the same files (warehouse.pg_export).
        return self.dbt_target or {"local": "duckdb", "services": "postgres", "cluster": "spark"}[self.profile]

    @property
    def dbt_artifacts_dir(self) -> Path:
        return self.home_dir / "dbt" / "target"

    @property
    def dbt_log_dir(self) -> Path:
        """dbt.log's folder (DBT_LOG_PATH; the in-process build writes it itself: warehouse/dbt_log.py)."""
        return self.home_dir / "dbt" / "logs"

    @property
    def feature_repo_dir(self) -> Path:
        return self.project_root / "feature_repo"

    @property
    def feast_registry_path(self) -> Path:
        return self.home_dir / "feast" / "registry.db"

    @property
    def feast_online_path(self) -> Path:
        return self.home_dir / "feast" / "online_store.db"

    @property
    def model_store_dir(self) -> Path:
        """BENTOML_HOME: the local model store."""
        return self.home_dir / "bentoml"

    @property
    def recall_dir(self) -> Path:
        """Recall indexes (text, item embeddings) per day: <recall_dir>/<day>/, CURRENT names the served one."""
        return self.home_dir / "retrieval"

    @property
    def cold_start_prior_path(self) -> Path:
        """Per item, the learned cold-start prior (CTR, CVR) and its history so far (training/cold_start_prior.py)."""
        return self.home_dir / "models" / "cold_start_prior.parquet"

    @property
    def loop_dir(self) -> Path:
        """The closed loop's per-day metrics and reports (orchestration/loop.py)."""
        return self.home_dir / "loop"

    @property
    def preranker_dir(self) -> Path:
        """Pre-rankers per day: <preranker_dir>/<day>/ (model + card), CURRENT names the served one."""
        return self.home_dir / "models" / "preranker"

    @property
    def preranker_gate_dir(self) -> Path:
        """The pre-ranker gate's records: decisions/<day>.json, and refused/<day>/ (a refused model and its card)."""
        return self.home_dir / "models" / "preranker_gate"

    @property
    def quality_dir(self) -> Path:
        """Validation results and Data Docs."""
        return self.home_dir / "quality"

    @property
    def quarantine_dir(self) -> Path:
        """Raw partitions that failed validation, moved aside with their results: <table>/dt=YYYY-MM-DD/."""
        return self.home_dir / "quarantine"

    @property
    def labelstudio_dir(self) -> Path:
        """Label Studio's venv, SQLite database, media and url file (labelling/studio.py)."""
        return self.home_dir / "labelstudio"

    @property
    def spark_dir(self) -> Path:
        """The `spark` dbt target's tables (warehouse/), Derby metastore and scratch space (warehouse/spark.py)."""
        return self.home_dir / "spark"

    @property
    def labels_dir(self) -> Path:
        """Sampled tasks, exported annotations and aggregated labels: <kind>/dt=YYYY-MM-DD/."""
        return self.home_dir / "labels"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def serving_logs_dir(self) -> Path:
        """Served requests and impressions in the raw events contract: events/dt=YYYY-MM-DD/part-<uuid>.parquet.

        Kept apart from raw_dir, whose partitions the simulator overwrites."""
        return self.home_dir / "serving_logs"

    @property
    def service_log_file(self) -> Path:
        """The ranking service's rotated log (settings.serving.service_log_*)."""
        return self.serving.service_log_path or self.home_dir / "logs" / "serve.log"

    @property
    def rules_file(self) -> Path:
        """The ranking service's business rules (serving/rules.yaml unless settings.serving.rules_path)."""
        return self.serving.rules_path or self.project_root / "serving" / "rules.yaml"

    @property
    def experiments_file(self) -> Path:
        """The ranking service's A/B tests and interleavings (serving/experiments.yaml unless
        settings.serving.experiments_path)."""
        return self.serving.experiments_path or self.project_root / "serving" / "experiments.yaml"

    @property
    def experiments_state_file(self) -> Path:
        """When operators started and stopped each experiment (`shoprank experiment start|stop`): it overrides the
        declared start/stop; the arms stay in the versioned experiments file."""
        return self.home_dir / "experiments" / "state.json"

    @property
    def airflow_home(self) -> Path:
        return self.home_dir / "airflow"

    @property
    def airflow_passwords_file(self) -> Path:
        return self.airflow_home / "passwords.json"

    @property
    def dags_dir(self) -> Path:
        return self.project_root / "dags"

    def ensure_dirs(self) -> None:
        for path in (
            self.raw_dir,
            self.truth_dir,
            self.warehouse_path.parent,
            self.marts_build_dir,  # not marts_export_dir: the publish step makes it, as a symlink
            self.marts_snapshots_dir,
            self.dbt_artifacts_dir,
            self.feast_registry_path.parent,
            self.model_store_dir,
            self.quality_dir,
            self.reports_dir,
            self.airflow_home,
        ):
            path.mkdir(parents=True, exist_ok=True)

    def runtime_env(self) -> dict[str, str]:
        """Environment every tool of the stack needs, derived from these settings.

        Exported by :func:`apply_runtime_env` for in-process libraries, and passed to subprocesses (dbt, Airflow,
        BentoML) so that they all see the same paths.
        """
        env = dict(TELEMETRY_OFF)
        env.update(
            {
                "SHOPRANK_PROFILE": self.profile,
                "SHOPRANK_HOME": str(self.home_dir),
                "SHOPRANK_PROJECT_ROOT": str(self.project_root),
                "SHOPRANK_RAW_DIR": str(self.raw_dir),
                # The service's request and impression logs: dbt's experiment_* models read them.
                "SHOPRANK_SERVING_LOGS_DIR": str(self.serving_logs_dir),
                "SHOPRANK_WAREHOUSE_PATH": str(self.warehouse_path),
                # Read by dbt_project/profiles.yml (not SHOPRANK_WAREHOUSE_MEMORY_LIMIT: that is the override
                # setting, and exporting the derived value under it would pin it for later settings objects).
                "SHOPRANK_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
                "SHOPRANK_DUCKDB_TEMP_DIR": str(self.duckdb_temp_dir),
                "SHOPRANK_DUCKDB_MAX_VACUUM_TASKS": str(self.warehouse_vacuum_tasks),
                "SHOPRANK_MARTS_EXPORT_DIR": str(self.marts_export_dir),
                # dbt's export post-hook writes here (dbt_project/macros/incremental.sql); publish copies it out.
                "SHOPRANK_MARTS_BUILD_DIR": str(self.marts_build_dir),
                "SHOPRANK_N_CATEGORIES": str(self.simulator.categories),
                "SHOPRANK_FEAST_PROJECT": self.feast_project,
                "SHOPRANK_FEAST_REGISTRY_PATH": str(self.feast_registry_path),
                "SHOPRANK_FEAST_ONLINE_PATH": str(self.feast_online_path),
                # Read by feature_repo/feature_store.services.yaml (SQL registry on PostgreSQL, Redis online store).
                "SHOPRANK_FEAST_REGISTRY_URL": self.services.postgres_url(self.services.feast_registry_database),
                "SHOPRANK_FEAST_REDIS": self.services.redis_connection_string,
                # Read by dbt_project/profiles.yml's `postgres` target.
                "SHOPRANK_PG_HOST": self.services.postgres_host,
                "SHOPRANK_PG_PORT": str(self.services.postgres_port),
                "SHOPRANK_PG_USER": self.services.postgres_user,
                "SHOPRANK_PG_PASSWORD": (
                    self.services.postgres_password.get_secret_value() if self.services.postgres_password else ""
                ),
                "SHOPRANK_PG_DB": self.services.warehouse_database,
                "SHOPRANK_PG_SCHEMA": self.services.warehouse_schema,
                "DBT_PROFILES_DIR": str(self.dbt_project_dir),
                "DBT_TARGET_PATH": str(self.dbt_artifacts_dir),
                "DBT_LOG_PATH": str(self.dbt_log_dir),
                "DBT_LOG_LEVEL_FILE": self.dbt_log_level_file,
                "BENTOML_HOME": str(self.model_store_dir),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
                # plugins/shoprank_docs.py: Data Docs, dbt docs and reports in the UI, behind its login.
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_root / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": str(self.airflow.parallelism),
                "AIRFLOW__API__HOST": self.airflow.host,
                "AIRFLOW__API__PORT": str(self.airflow.port),
                "AIRFLOW__API__BASE_URL": self.airflow.base_url or f"http://{self.airflow.host}:{self.airflow.port}",
                "AIRFLOW__CORE__EXECUTOR": self.airflow_executor,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.airflow.default_queue,
                # The scheduler's LocalExecutor forks task processes from a forkserver that has already imported the
                # stack, so a task does not spend seconds importing dbt, GX, Feast or XGBoost again (one dbt task per
                # model makes that overhead count). A module that fails to import is skipped, not fatal.
                "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
                "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(AIRFLOW_TASK_PRELOAD),
                # Cosmos's dbt partial-parse cache, per home (its default, /tmp/cosmos, is shared by every home).
                "AIRFLOW__COSMOS__CACHE_DIR": str(self.airflow_home / "cosmos"),
                # Login always required: one admin user, password file kept in the Airflow home (see airflow_auth).
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.airflow.admin_user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_passwords_file),
            }
        )
        if self.profile in ("services", "cluster"):
            database = self.services.airflow_database
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.services.postgres_url(database)
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = self.services.postgres_url(
                database, driver="postgresql+psycopg_async"
            )
        if self.airflow_executor == "CeleryExecutor":
            services = self.services
            env["AIRFLOW__CELERY__BROKER_URL"] = (
                f"redis://{services.redis_host}:{services.redis_port}/{self.airflow.celery_redis_db}"
            )
            env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] = self.airflow.celery_key_prefix
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + services.postgres_url(services.airflow_database)
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.airflow.worker_concurrency)
        return env

    @property
    def airflow_executor(self) -> str:
        """Airflow's executor: settings.airflow.executor, else CeleryExecutor on the cluster profile."""
        return self.airflow.executor or ("CeleryExecutor" if self.profile == "cluster" else "LocalExecutor")


def apply_runtime_env(settings: Settings) -> None:
    """Export :meth:`Settings.runtime_env` into this process (libraries read BENTOML_HOME etc. from os.environ)."""
    os.environ.update(settings.runtime_env())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached). Tests that change the environment call ``get_settings.cache_clear()``."""
    return Settings()
