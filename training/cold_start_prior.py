"""The learned cold-start prior: a new item's CTR and CVR in its first days, predicted from its content.

Trained point-in-time for run day D, from the raw partitions (DuckDB over the parquet):
- examples: items created since the first logged day and at least ``prior_first_days`` before D, so each one's
  first days are over (and lie before D); nothing dated D or later is read;
- content features, known when the item was listed: category, item type (product / video / live), log price and
  the seller's history at that moment (items listed before, purchases before, age in days);
- labels: clicks per impression (weighted by impressions) and purchases per click (weighted by clicks) over the
  item's first days only, never later outcomes.
Two small XGBoost models (logistic regression on the rates) predict the prior of every item in the catalogue from
the same features; with fewer than ``prior_min_items`` examples the prior is the examples' mean rates (or the
catalogue's). The table (shoprank/item_priors.py) also carries each item's history up to D, which the exploration
rule (serving/rules/learned_exploration.py) turns into a posterior: the prior's weight fades as impressions come.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shoprank.item_priors import write_priors
from shoprank.resources import duckdb_connect
from shoprank.settings import Settings

log = logging.getLogger(__name__)

FEATURES = [
    "category_id",
    "item_type_code",
    "log_price",
    "seller_items_before",
    "seller_sales_before",
    "seller_age_days",
]
# Rates when nothing has been observed at all (a catalogue's first day).
FALLBACK_CTR, FALLBACK_CVR = 0.05, 0.2

_ITEMS_SQL = """
with listed as (
    select item_id, seller_id, category_id, price, item_type, created_ts
    from read_parquet('{raw}/items/*/*.parquet', hive_partitioning = false, union_by_name = true)
    where created_ts < $cutoff
    qualify row_number() over (partition by item_id order by created_ts desc) = 1
),
sellers as (
    select seller_id, min(created_ts) as seller_created_ts
    from read_parquet('{raw}/sellers/*/*.parquet', hive_partitioning = false, union_by_name = true)
    group by seller_id
),
events as (
    select event_type, item_id, event_ts
    from read_parquet('{raw}/events/*/*.parquet', hive_partitioning = false, union_by_name = true)
    where event_ts < $cutoff
),
purchases as (
    select listed.seller_id, events.event_ts
    from events join listed using (item_id)
    where events.event_type = 'purchase'
),
first_days as (
    select
        listed.item_id,
        count(*) filter (where events.event_type = 'impression') as first_impressions,
        count(*) filter (where events.event_type = 'click') as first_clicks,
        count(*) filter (where events.event_type = 'purchase') as first_purchases
    from listed join events using (item_id)
    where events.event_ts >= listed.created_ts
        and events.event_ts < listed.created_ts + to_days($first_days)
    group by listed.item_id
),
history as (
    select
        item_id,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'purchase') as purchases
    from events
    group by item_id
)
select
    listed.item_id,
    listed.created_ts,
    listed.category_id,
    case listed.item_type when 'product' then 0 when 'video' then 1 else 2 end as item_type_code,
    ln(greatest(listed.price, 0.01)) as log_price,
    (select count(*) from listed as earlier
        where earlier.seller_id = listed.seller_id and earlier.created_ts < listed.created_ts) as seller_items_before,
    (select count(*) from purchases
        where purchases.seller_id = listed.seller_id and purchases.event_ts < listed.created_ts) as seller_sales_before,
    coalesce(date_diff('second', sellers.seller_created_ts, listed.created_ts) / 86400.0, 0) as seller_age_days,
    coalesce(first_days.first_impressions, 0) as first_impressions,
    coalesce(first_days.first_clicks, 0) as first_clicks,
    coalesce(first_days.first_purchases, 0) as first_purchases,
    coalesce(history.impressions, 0) as impressions,
    coalesce(history.clicks, 0) as clicks,
    coalesce(history.purchases, 0) as purchases
from listed
left join sellers using (seller_id)
left join first_days using (item_id)
left join history using (item_id)
order by listed.item_id
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0))


def catalogue_frame(settings: Settings, run_date: date) -> pd.DataFrame:
    """Every item listed before ``run_date`` with its content features, first-days outcomes and history, all from
    data stamped before ``run_date`` (00:00 UTC)."""
    con = duckdb_connect(settings)
    try:
        sql = _ITEMS_SQL.format(raw=settings.raw_dir.as_posix())
        params = {"cutoff": _midnight(run_date), "first_days": settings.loop.prior_first_days}
        return con.execute(sql, params).df()
    finally:
        con.close()


def first_logged_day(settings: Settings) -> date | None:
    """The earliest day with an events partition (items listed before it have no observed first days)."""
    days = sorted(p.name.removeprefix("dt=") for p in (settings.raw_dir / "events").glob("dt=*"))
    return date.fromisoformat(days[0]) if days else None


def training_frame(settings: Settings, run_date: date, catalogue: pd.DataFrame | None = None) -> pd.DataFrame:
    """The prior's examples for ``run_date``: items whose first days were logged and ended before the run's day."""
    frame = catalogue_frame(settings, run_date) if catalogue is None else catalogue
    first = first_logged_day(settings)
    if first is None or frame.empty:
        return frame.iloc[0:0]
    cfg = settings.loop
    created = pd.to_datetime(frame["created_ts"], utc=True).dt.tz_localize(None)
    observed_from = _midnight(first)
    ends = created + pd.Timedelta(days=cfg.prior_first_days)
    keep = (
        (created >= observed_from)
        & (ends <= _midnight(run_date))
        & (created >= _midnight(run_date - timedelta(days=cfg.prior_lookback_days)))
    )
    return frame[keep.to_numpy()].reset_index(drop=True)


def _fit_rate(x: pd.DataFrame, successes: np.ndarray, trials: np.ndarray, seed: int) -> Any:
    from xgboost import XGBRegressor

    model = XGBRegressor(
        objective="reg:logistic", n_estimators=40, max_depth=3, learning_rate=0.1, random_state=seed, n_jobs=1
    )
    model.fit(x[FEATURES].to_numpy(dtype=float), successes / trials, sample_weight=trials)
    return model


def train_cold_start_prior(settings: Settings, run_date: date) -> dict[str, Any]:
    """Train the prior point-in-time for ``run_date``, write every item's prior and history; returns a summary."""
    catalogue = catalogue_frame(settings, run_date)
    examples = training_frame(settings, run_date, catalogue)
    shown = examples[examples["first_impressions"] > 0]
    clicked = examples[examples["first_clicks"] > 0]
    imp, clk = shown["first_impressions"].sum(), shown["first_clicks"].sum()
    mean_ctr = float(clk / imp) if imp else _catalogue_rate(catalogue, "clicks", "impressions", FALLBACK_CTR)
    buys = clicked["first_purchases"].sum()
    mean_cvr = float(buys / clicked["first_clicks"].sum()) if len(clicked) else FALLBACK_CVR
    if not len(clicked):
        mean_cvr = _catalogue_rate(catalogue, "purchases", "clicks", FALLBACK_CVR)
    min_items = settings.loop.prior_min_items
    x = catalogue[FEATURES].to_numpy(dtype=float)
    if len(shown) >= min_items:
        ctr_model = _fit_rate(
            shown, shown["first_clicks"].to_numpy(float), shown["first_impressions"].to_numpy(float), 7
        )
        prior_ctr = ctr_model.predict(x)
        mode = "model"
    else:
        prior_ctr = np.full(len(catalogue), mean_ctr)
        mode = "mean"
    if len(clicked) >= min_items:
        cvr_model = _fit_rate(
            clicked, clicked["first_purchases"].to_numpy(float), clicked["first_clicks"].to_numpy(float), 8
        )
        prior_cvr = cvr_model.predict(x)
    else:
        prior_cvr = np.full(len(catalogue), mean_cvr)
    table = catalogue.assign(prior_ctr=np.clip(prior_ctr, 1e-4, 1 - 1e-4), prior_cvr=np.clip(prior_cvr, 1e-4, 1 - 1e-4))
    write_priors(table, settings.cold_start_prior_path)
    summary = {
        "run_date": run_date.isoformat(),
        "items": len(table),
        "examples": len(shown),
        "examples_with_clicks": len(clicked),
        "ctr_prior": mode,
        "mean_first_days_ctr": mean_ctr,
        "mean_first_days_cvr": mean_cvr,
        "prior_ctr_range": [float(table["prior_ctr"].min()), float(table["prior_ctr"].max())] if len(table) else [],
        "path": str(settings.cold_start_prior_path),
    }
    log.info("cold-start prior for %s: %s", run_date, summary)
    return summary


def _catalogue_rate(catalogue: pd.DataFrame, num: str, den: str, fallback: float) -> float:
    total = float(catalogue[den].sum()) if len(catalogue) else 0.0
    return float(catalogue[num].sum()) / total if total else fallback
