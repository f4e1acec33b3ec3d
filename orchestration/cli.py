"""`shoprank` command line: one command per pipeline step, plus helpers for operators and `make`.

shoprank simulate --run-date 2026-01-07
shoprank run                      # every step, in order, without Airflow
shoprank env                      # `eval "$(shoprank env)"` exports the stack's paths for a shell
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration import pipeline
from orchestration.progress import stage
from quality.quarantine import app as quarantine_app
from shoprank.settings import get_settings

app = typer.Typer(help="ShopRank: e-commerce ranking, from raw events to a served feed.", no_args_is_help=True)

RunDate = Annotated[
    str | None, typer.Option("--run-date", help="day to process, YYYY-MM-DD (default: settings.default_run_date)")
]


def _run_date(value: str | None) -> date:
    if value is None:
        return get_settings().default_run_date
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter(f"--run-date must be YYYY-MM-DD, got {value!r}") from err


def _print(result: Any) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@app.callback()
def _configure(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP call drowns the CLI's own output


def _step_command(name: str) -> None:
    step = pipeline.STEPS[name]

    def command(run_date: RunDate = None) -> None:
        day = _run_date(run_date)
        with stage(name):
            result = step(day)
        _print(result)

    command.__doc__ = (step.__doc__ or f"Run the {name} step.").strip().splitlines()[0]
    app.command(name)(command)


# Steps with a hand-written command below (more options than --run-date).
_CUSTOM_COMMANDS = {"build-warehouse", "promote", "simulate"}
for _name in pipeline.STEPS:
    if _name not in _CUSTOM_COMMANDS:
        _step_command(_name)

app.add_typer(quarantine_app, name="quarantine")


@app.command("simulate")
def simulate(
    run_date: RunDate = None,
    events: Annotated[
        int | None, typer.Option(help="target events over the window (sizes requests and world; e.g. 10000000)")
    ] = None,
) -> None:
    """Write the simulated raw partitions for the run's window (raw data contract)."""
    if events is not None:  # through the settings object, so every reader of the sizes agrees
        os.environ["SHOPRANK_SIMULATOR__EVENTS"] = str(events)
        get_settings.cache_clear()
    day = _run_date(run_date)
    with stage("simulate"):
        result = pipeline.simulate(day)
    _print(result)


@app.command("build-warehouse")
def build_warehouse(
    run_date: RunDate = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="rebuild every mart from all raw history (once after a mart's column set changes)"
        ),
    ] = False,
    select: Annotated[
        str | None, typer.Option(help="dbt node selection, e.g. 'user_category_features' (default: every node)")
    ] = None,
) -> None:
    """dbt build: staging, marts and their tests on the warehouse; the marts' parquet goes to the build area."""
    day = _run_date(run_date)
    with stage("build-warehouse"):
        result = pipeline.build_warehouse(day, full_refresh=full_refresh, select=select)
    _print(result)


@app.command("import-interactions")
def import_interactions(
    path: Annotated[str, typer.Argument(help="interactions table: .csv, .tsv, .parquet or a folder of parquet")],
    mapping: Annotated[str | None, typer.Option(help="YAML column mapping (producers/adapters/mapping.py)")] = None,
    items: Annotated[str | None, typer.Option(help="optional items table (attributes by item key)")] = None,
    users: Annotated[str | None, typer.Option(help="optional users table (attributes by user key)")] = None,
    user_col: Annotated[str | None, typer.Option(help="user column (overrides the mapping)")] = None,
    item_col: Annotated[str | None, typer.Option(help="item column")] = None,
    timestamp_col: Annotated[str | None, typer.Option(help="timestamp column")] = None,
    timestamp_unit: Annotated[
        str | None, typer.Option(help="epoch unit s/ms/us/ns, or 'none' for date strings")
    ] = None,
    rating_col: Annotated[str | None, typer.Option(help="rating column (explicit feedback)")] = None,
    click_at: Annotated[float | None, typer.Option(help="rating >= this is a click")] = None,
    purchase_at: Annotated[float | None, typer.Option(help="rating >= this is an add-to-cart and a purchase")] = None,
    category_col: Annotated[str | None, typer.Option(help="item category column (labels -> dense ids)")] = None,
) -> None:
    """Validate any interactions table and swap it in as the home's raw data (every raw table replaced)."""
    from pathlib import Path

    from pydantic import ValidationError

    from producers.adapters.interactions import ImportValidationError
    from producers.adapters.interactions import import_interactions as run_import
    from producers.adapters.mapping import load_mapping

    timestamp: dict[str, Any] = {"column": timestamp_col} if timestamp_col else {}
    if timestamp_unit:
        timestamp["unit"] = None if timestamp_unit.lower() == "none" else timestamp_unit
    rating = {"column": rating_col, "click_at": click_at, "purchase_at": purchase_at}
    try:
        spec = load_mapping(
            Path(mapping) if mapping else None,
            user=user_col,
            item=item_col,
            timestamp=timestamp or None,
            rating={k: v for k, v in rating.items() if v is not None} or None,
            items={"category": category_col} if category_col else None,
        )
        _print(run_import(get_settings(), Path(path), spec, items=items, users=users))
    except (ImportValidationError, ValidationError, ValueError, FileNotFoundError) as err:
        typer.echo(f"import-interactions: {err}", err=True)
        raise typer.Exit(2) from err


@app.command("promote")
def promote(
    run_date: RunDate = None,
    tag: Annotated[str | None, typer.Option(help="model tag to gate (default: the run's challenger)")] = None,
    force: Annotated[bool, typer.Option(help="promote even if the gate refuses (the reason is recorded)")] = False,
) -> None:
    """Champion/challenger gate: promote the challenger only if it beats the champion on the same holdout."""
    if tag is None and not force:
        _print(pipeline.promote(_run_date(run_date)))
        return
    from training.gate import promote as run_gate
    from training.registry import registered_tag
    from training.train import candidate_dir

    settings = get_settings()
    challenger = tag or registered_tag(candidate_dir(settings, _run_date(run_date)))
    _print(run_gate(settings, challenger, force=force, label="manual"))


@app.command("rollback")
def rollback(reason: Annotated[str, typer.Option(help="why (recorded in the registry)")] = "manual rollback") -> None:
    """Retire the current champion and restore the previous one (serving picks it up on reload)."""
    from training.registry import rollback as run_rollback

    try:
        _print(run_rollback(get_settings(), reason))
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err


@app.command("run")
def run_all(run_date: RunDate = None) -> None:
    """Run every pipeline step in order, without Airflow (pipeline.run_all's order, one progress stage per step)."""
    day, results = _run_date(run_date), {}
    for number, (name, step) in enumerate(pipeline.STEPS.items(), start=1):
        with stage(name, number, len(pipeline.STEPS)):
            results[name] = step(day)
    _print(results)


@app.command("monitor")
def monitor(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(pipeline.MONITORS)}")],
    run_date: RunDate = None,
) -> None:
    """Run one of the shoprank_monitor DAG's reports for a day."""
    if name not in pipeline.MONITORS:
        raise typer.BadParameter(f"unknown monitor {name!r}; choose one of {', '.join(pipeline.MONITORS)}")
    _print(pipeline.MONITORS[name](_run_date(run_date)))


@app.command("status")
def status() -> None:
    """The home's state in a table: latest raw day, quarantine, published snapshot, champion, gates, service."""
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from orchestration.dashboard import status as home_status

    table = Table(title="ShopRank status", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for what, value in home_status(get_settings()):
        table.add_row(what, Text(value))  # Text: a reason's brackets are not rich markup
    # Off a terminal rich would wrap at 80 columns; a wider table keeps one row per line in logs and pipes.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@app.command("models")
def models() -> None:
    """List registered ranker models, newest first."""
    from training.registry import list_models

    _print(list_models(get_settings()))


@app.command("feast-ui")
def feast_ui(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8888) -> None:
    """Feast's own web UI on 127.0.0.1 for the active profile's registry (`make feast-ui`); Ctrl-C stops it."""
    from orchestration.feast_ui import feast_ui_command

    settings = get_settings()
    command = feast_ui_command(settings, port)
    typer.echo(f"==> feast ui ({command[4]}) on http://127.0.0.1:{port} (Ctrl-C stops it)", err=True)
    os.execve(command[0], command, {**os.environ, **settings.runtime_env()})  # the UI replaces this process


@app.command("env")
def env() -> None:
    """Print `export` lines for the paths and switches every tool needs (for `eval` in a shell)."""
    for key, value in sorted(get_settings().runtime_env().items()):
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command("airflow-init")
def airflow_init() -> None:
    """Prepare Airflow: login (password file in the Airflow home), metadata DB, migrations. Idempotent."""
    from orchestration.airflow_ops import init_airflow

    _print(init_airflow(get_settings()))


@app.command("backfill")
def backfill(
    start: Annotated[str, typer.Option(help="first day to process, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last day to process, YYYY-MM-DD (inclusive)")],
) -> None:
    """Backfill shoprank_daily over days START..END with Airflow's backfill (one run per day, in order).

    The runs start once the scheduler sees the DAG unpaused (`make airflow`, then unpause shoprank_daily).
    """
    import subprocess

    from orchestration.airflow_ops import backfill_command

    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as err:
        raise typer.BadParameter(f"START and END must be days, YYYY-MM-DD; got {start!r} and {end!r}") from err
    try:
        command = backfill_command(first, last)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    env = {**os.environ, **get_settings().runtime_env()}
    raise typer.Exit(subprocess.run(command, env=env, check=False).returncode)


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings."""
    typer.echo(get_settings().model_dump_json(indent=2))


@app.command("serve")
def serve(port: Annotated[int | None, typer.Option(help="port (default: settings.serving.port)")] = None) -> None:
    """Serve the latest registered ranker with BentoML on settings.serving.host (loopback by default)."""
    import os
    import sys
    from pathlib import Path

    settings = get_settings()
    command = [
        str(Path(sys.executable).with_name("bentoml")),
        "serve",
        "serving.service:RankingService",
        "--host",
        settings.serving.host,
        "--port",
        str(port or settings.serving.port),
    ]
    env = {**os.environ, **settings.runtime_env()}
    os.chdir(settings.project_root)
    # Replace this process with BentoML's, so that a signal to `shoprank serve` (Ctrl-C, a test's terminate())
    # reaches BentoML's supervisor and stops its workers instead of orphaning them.
    os.execve(command[0], command, env)


@app.command("stream-worker")
def stream_worker() -> None:
    """Consume the event stream: session state in Redis, session features pushed to the online store (SIGTERM stops)."""
    from serving.stream_worker import run_stream_worker
    from shoprank.settings import apply_runtime_env

    settings = get_settings()
    apply_runtime_env(settings)
    _print(run_stream_worker(settings))


@app.command("rank")
def rank(
    user_id: Annotated[str, typer.Option(help="user to rank for")] = "u000001",
    k: Annotated[int, typer.Option(help="items to return")] = 10,
    url: Annotated[str | None, typer.Option(help="service URL (default: settings.serving)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON response")] = False,
) -> None:
    """Ask the running ranking service for a user's feed and print it."""
    import httpx

    serving = get_settings().serving
    base = url or serving.base_url
    response = httpx.post(f"{base}/rank", json={"user_id": user_id, "k": k}, timeout=30)
    if response.status_code >= 400:
        typer.echo(f"{response.status_code}: {response.text}", err=True)
        raise typer.Exit(1)
    body = response.json()
    if as_json:
        _print(body)
        return
    typer.echo(f"user {body['user_id']}  model {body['model_version']}  degraded={body['degraded']}")
    for item in body["items"]:
        typer.echo(f"  {item['rank']:>3}  {item['item_id']:<12} {item['score']:>9.4f}  {item['reason']}")


@app.command("replay")
def replay(
    requests: Annotated[int, typer.Option(help="simulated feed requests (each asked of every policy)")] = 200,
    k: Annotated[int, typer.Option(help="items per feed")] = 20,
    seed: Annotated[int, typer.Option(help="seed of the users drawn and their responses")] = 0,
    url: Annotated[str | None, typer.Option(help="service URL (default: settings.serving)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
    experiments: Annotated[
        bool,
        typer.Option(
            "--experiments",
            help="drive the service's running experiments instead (report clicks/purchases to POST /events), "
            "then analyse what it logged",
        ),
    ] = False,
    baseline_url: Annotated[
        str | None,
        typer.Option(
            help="replay with feedback instead: visits whose clicks and purchases go to POST /events, the service at "
            "--url (session features, v4) against this one (e.g. pinned to v3); --requests counts visits",
        ),
    ] = None,
    clock: Annotated[
        str,
        typer.Option(
            help="with --baseline-url: 'visits' runs visits side by side on the simulator's clock in real time "
            "(request gaps, click delays: what the session features were trained on; ~30 min for 100 visits, "
            "the longest visit sets it), "
            "'compressed' asks the requests 0.3 s apart with each slate's clicks reported at once",
        ),
    ] = "visits",
    spread_seconds: Annotated[
        float, typer.Option(help="with --clock visits: the visits start uniformly within this many seconds")
    ] = 600.0,
) -> None:
    """Replay simulated users against the running service: model+rules vs model vs popularity, online metrics."""
    from orchestration.replay import format_table
    from orchestration.replay import replay as run_replay

    settings = get_settings()
    if baseline_url:
        from orchestration.session_replay import replay_with_feedback

        feedback = replay_with_feedback(
            settings,
            url or settings.serving.base_url,
            baseline_url,
            requests,
            k,
            seed,
            clock=clock,
            spread_seconds=spread_seconds,
        )
        typer.echo(feedback.to_string(float_format=lambda x: f"{x:.4f}"))
        return
    if experiments:
        from orchestration.experiment_replay import replay_experiments

        _print(replay_experiments(settings, url or settings.serving.base_url, n_requests=requests, k=k, seed=seed))
        return
    table = run_replay(settings, url or settings.serving.base_url, n_requests=requests, k=k, seed=seed)
    if as_json:
        _print(table.reset_index().to_dict(orient="records"))
        return
    typer.echo(format_table(table))


experiment_app = typer.Typer(help="Online experiments (serving/experiments.yaml): status, start/stop, report.")
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("status")
def experiment_status() -> None:
    """The declared experiments: layer, salt, arms and shares, window, running now (the file validated)."""
    from orchestration.experiments import status as experiments_status

    _print(experiments_status(get_settings()))


@experiment_app.command("report")
def experiment_report(run_date: RunDate = None) -> None:
    """Analyse every experiment through the day; write the HTML report (what the shoprank_experiments DAG runs)."""
    _print(pipeline.experiments_report(_run_date(run_date)))


NoReload = Annotated[bool, typer.Option("--no-reload", help="do not ask the running service to reload")]


def _experiment_change(action: str, name: str, no_reload: bool, until: str | None = None) -> None:
    """Start or stop ``name``; an unknown name or a change that cannot apply exits 2 with the reason."""
    from datetime import datetime

    from orchestration import experiments
    from serving.experiments.config import ExperimentConfigError
    from serving.experiments.lifecycle import ExperimentStateError

    settings = get_settings()
    try:
        if action == "start":
            stop_at = datetime.fromisoformat(until) if until else None
            if stop_at is not None and stop_at.tzinfo is None:
                raise ExperimentStateError(f"--until needs a time zone (e.g. {until}+00:00), got {until!r}")
            _print(experiments.start(settings, name, until=stop_at, reload=not no_reload))
        else:
            _print(experiments.stop(settings, name, reload=not no_reload))
    except (ExperimentStateError, ExperimentConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@experiment_app.command("start")
def experiment_start(
    name: str,
    no_reload: NoReload = False,
    until: Annotated[str | None, typer.Option(help="stop at this ISO time, with zone (default: declared stop)")] = None,
) -> None:
    """Start experiment NAME now (recorded under the home; the declared file keeps its arms); reload the service."""
    _experiment_change("start", name, no_reload, until)


@experiment_app.command("stop")
def experiment_stop(name: str, no_reload: NoReload = False) -> None:
    """Stop experiment NAME now (its window stays recorded for the report); reload the service."""
    _experiment_change("stop", name, no_reload)


@experiment_app.command("decide")
def experiment_decide(name: str, run_date: RunDate = None) -> None:
    """Apply the decision rule to NAME's analysis through the day; a clear winner's model is promoted through the
    gate and registry; the decision (or refusal) is recorded with its numbers and reasons."""
    from orchestration.experiments import decide
    from serving.experiments.lifecycle import ExperimentStateError

    try:
        _print(decide(get_settings(), name, _run_date(run_date)))
    except ExperimentStateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("loop")
def loop(
    policy: Annotated[str, typer.Option(help="model-only | rules | learned | oracle")],
    days: Annotated[int | None, typer.Option(help="served days after the warm-up (default: settings.loop.days)")] = (
        None
    ),
    retrain_every: Annotated[
        int | None,
        typer.Option(help="retrain every N days, 0 never (default: settings.loop.retrain_every_days, 1)"),
    ] = None,
    rule: Annotated[
        list[str] | None, typer.Option(help="a rules setting for this run, SECTION.KEY=VALUE (repeatable)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the run's name (default: the policy), for a rules variant")] = None,
    warm_home: Annotated[
        Path | None, typer.Option(help="start from a copy of the warm-up built in this home (`--warm-up`)")
    ] = None,
    warm_up: Annotated[
        bool, typer.Option("--warm-up", help="only build the warm-up in the home, for runs to share (--warm-home)")
    ] = False,
) -> None:
    """Closed-loop marketplace: simulated users see what POLICY serves, the daily pipeline retrains on it; the
    run's long-run metrics (GMV, coverage, new-seller survival, ...) go to <home>/loop/NAME/."""
    from orchestration.loop import parse_rule_settings, run_loop

    try:
        if warm_up:
            from orchestration.loop_home import build_warm_up
            from shoprank.settings import get_settings

            _print(build_warm_up(get_settings().home_dir, service=policy != "oracle"))
            return
        overrides = parse_rule_settings(rule or [])
        echo = lambda line: typer.echo(line, err=True)  # noqa: E731
        _print(
            run_loop(policy, days, retrain_every, rules_overrides=overrides, echo=echo, name=name, warm_home=warm_home)
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


labels_app = typer.Typer(help="Relevance labelling for search (Label Studio): sample, import, export, aggregate.")
app.add_typer(labels_app, name="labels")


def _labels_command(name: str, doc: str) -> None:
    def command(run_date: RunDate = None) -> None:
        from orchestration.labelling import STEPS as LABEL_STEPS

        _print(LABEL_STEPS[name](_run_date(run_date)))

    command.__doc__ = doc
    labels_app.command(name)(command)


for _name, _doc in (
    ("sample", "Sample the day's (query, item) pairs to label: stratified, active picks, gold questions."),
    ("import", "Import the day's tasks into the Label Studio relevance project (pre-labels when a model exists)."),
    ("simulate", "Simulated labellers answer the day's tasks through Label Studio's API."),
    ("export", "Export and check the day's annotations from Label Studio."),
    ("aggregate", "QC and aggregated grades of the day; retrain the relevance model."),
):
    _labels_command(_name, _doc)


@labels_app.command("studio")
def labels_studio(action: Annotated[str, typer.Argument(help="install | start | stop")]) -> None:
    """Label Studio in its own venv under the home: install, start on loopback (admin user + API token), stop."""
    from orchestration.labelling import studio

    _print(studio(action))


@app.command("spark-install")
def spark_install() -> None:
    """Install the `spark` dbt target's own venv (settings.spark.venv, default <home>/venvs/spark): dbt-core as in
    .venv, pinned dbt-spark[session] and pyspark; never into .venv."""
    from warehouse.spark import install

    _print({"dbt": str(install(get_settings()))})


if __name__ == "__main__":
    app()
