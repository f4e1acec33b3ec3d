{{ config(location=env_var('SHOPRANK_MARTS_EXPORT_DIR') ~ '/retrieval_trending.parquet') }}
-- Trending items per category: clicks on the run's last day against the item's daily average over the window
-- before it, smoothed, (clicks_1d + 1) / (clicks_prev_avg + 1); the top M per category, as of the snapshot.
{%- set window_days = var('retrieval_window_days') | int %}
{%- set max_trending = var('retrieval_max_trending') | int %}

with

run as (

    select max(run_date) as run_date from {{ ref('int_day_spine') }}

),

clicks as (

    select
        events.item_id,
        events.category_id,
        count(*) filter (where events.event_date = run.run_date) as clicks_1d,
        count(*) filter (where events.event_date < run.run_date) as clicks_prev

    from {{ ref('int_events') }} as events
    cross join run
    where events.event_type = 'click'
        and events.category_id is not null
        and events.event_date > run.run_date - interval {{ window_days }} day
    group by events.item_id, events.category_id

),

scored as (

    select
        clicks.item_id,
        clicks.category_id,
        clicks.clicks_1d,
        clicks.clicks_prev,
        (cast(clicks.clicks_1d as double) + 1.0)
        / (cast(clicks.clicks_prev as double) / {{ window_days - 1 }} + 1.0) as trend_score

    from clicks
    where clicks.clicks_1d > 0

),

ranked as (

    select
        scored.*,
        row_number() over (
            partition by scored.category_id order by scored.trend_score desc, scored.item_id
        ) as trend_rank

    from scored

),

final as (

    select
        ranked.*,
        cast(run.run_date + interval 1 day as date) as snapshot_date

    from ranked
    cross join run
    where ranked.trend_rank <= {{ max_trending }}

)

select * from final
order by category_id, trend_rank
