{{ config(
    unique_key='snapshot_date',
    partition_by=partition_key('snapshot_date'),
    run_partition_offset=1,
    post_hook="{{ export_mart('item_id, neighbour_rank', latest_only='snapshot_date') }}",
) }}
-- Item-to-item co-visitation for candidate retrieval: two items clicked by the same user on the same day (the
-- session) within the last N days before the serving snapshot (run's day + 1); the top M neighbours per item.
-- Incremental by snapshot_date: each run writes its own snapshot (a backfill rewrites only its own); the
-- parquet export holds the newest one, the one serving reads. run_partition_offset 1: the run writes that one
-- snapshot (run's day + 1), so its data tests check that one (macros/incremental.sql: get_where_subquery).
{%- set window_days = var('retrieval_window_days') | int %}
{%- set max_neighbours = var('retrieval_max_neighbours') | int %}

with

run as (

    select max(run_date) as run_date from {{ ref('int_day_spine') }}

),

clicks as (

    select distinct
        events.user_id,
        events.event_date,
        events.item_id

    from {{ ref('int_events') }} as events
    cross join run
    where events.event_type = 'click'
        and events.event_date > {{ add_days('run.run_date', -window_days) }}

),

pairs as (

    select
        a.item_id,
        b.item_id as neighbour_item_id,
        count(*) as co_visits

    from clicks as a
    inner join clicks as b
        on a.user_id = b.user_id
        and a.event_date = b.event_date
        and a.item_id <> b.item_id
    group by a.item_id, b.item_id

),

ranked as (

    select
        pairs.*,
        -- bigint on every warehouse (Spark's row_number is an int)
        cast(row_number() over (
            partition by pairs.item_id order by pairs.co_visits desc, pairs.neighbour_item_id
        ) as bigint) as neighbour_rank

    from pairs

),

final as (

    select
        ranked.item_id,
        ranked.neighbour_item_id,
        ranked.co_visits,
        ranked.neighbour_rank,
        cast({{ add_days('run.run_date', 1) }} as date) as snapshot_date

    from ranked
    cross join run
    where ranked.neighbour_rank <= {{ max_neighbours }}

)

select * from final
