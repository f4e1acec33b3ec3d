{{ config(
    unique_key='snapshot_date',
    partition_by=partition_key('snapshot_date'),
    run_partition_offset=1,
    post_hook="{{ export_mart('category_id, trend_rank', latest_only='snapshot_date') }}",
) }}
-- Trending items per category: clicks on the run's last day against the item's daily average over the window
-- before it, smoothed, (clicks_1d + 1) / (clicks_prev_avg + 1); the top M per category, as of the snapshot.
-- Incremental by snapshot_date: each run writes its own snapshot (a backfill rewrites only its own); the
-- parquet export holds the newest one, the one serving reads. run_partition_offset 1: the run writes that one
-- snapshot (run's day + 1), so its data tests check that one (macros/incremental.sql: get_where_subquery).
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
        and events.event_date > {{ add_days('run.run_date', -window_days) }}
    group by events.item_id, events.category_id

),

scored as (

    select
        clicks.item_id,
        clicks.category_id,
        clicks.clicks_1d,
        clicks.clicks_prev,
        (cast(clicks.clicks_1d as {{ float8() }}) + 1.0)
        / (cast(clicks.clicks_prev as {{ float8() }}) / {{ window_days - 1 }} + 1.0) as trend_score

    from clicks
    where clicks.clicks_1d > 0

),

ranked as (

    select
        scored.*,
        -- bigint on every warehouse (Spark's row_number is an int)
        cast(row_number() over (
            partition by scored.category_id order by scored.trend_score desc, scored.item_id
        ) as bigint) as trend_rank

    from scored

),

final as (

    select
        ranked.*,
        cast({{ add_days('run.run_date', 1) }} as date) as snapshot_date

    from ranked
    cross join run
    where ranked.trend_rank <= {{ max_trending }}

)

select * from final
