{{ config(
    unique_key='snapshot_date',
    partition_by=partition_key('snapshot_date'),
    run_partition_offset=1,
    post_hook="{{ export_mart('user_id, recency_rank', latest_only='snapshot_date') }}",
) }}
-- Each user's most recently clicked items (seeds of co-visitation retrieval) within the last N days before the
-- serving snapshot (run's day + 1); one row per (user, item), the latest click first.
-- Incremental by snapshot_date: each run writes its own snapshot (a backfill rewrites only its own); the
-- parquet export holds the newest one, the one serving reads. run_partition_offset 1: the run writes that one
-- snapshot (run's day + 1), so its data tests check that one (macros/incremental.sql: get_where_subquery).
{%- set window_days = var('retrieval_window_days') | int %}
{%- set max_recent = var('retrieval_max_recent_items') | int %}

with

run as (

    select max(run_date) as run_date from {{ ref('int_day_spine') }}

),

clicks as (

    select
        events.user_id,
        events.item_id,
        max(events.event_ts) as last_click_ts

    from {{ ref('int_events') }} as events
    cross join run
    where events.event_type = 'click'
        and events.event_date > {{ add_days('run.run_date', -window_days) }}
    group by events.user_id, events.item_id

),

ranked as (

    select
        clicks.*,
        -- bigint on every warehouse (Spark's row_number is an int)
        cast(
            row_number() over (partition by clicks.user_id order by clicks.last_click_ts desc, clicks.item_id) as bigint
        ) as recency_rank

    from clicks

),

final as (

    select
        ranked.user_id,
        ranked.item_id,
        ranked.last_click_ts,
        ranked.recency_rank,
        cast({{ add_days('run.run_date', 1) }} as date) as snapshot_date

    from ranked
    cross join run
    where ranked.recency_rank <= {{ max_recent }}

)

select * from final
