{{ config(
    materialized='incremental', incremental_strategy=partition_strategy(), unique_key='event_date',
    partition_by=partition_key('event_date'), on_schema_change='fail', stored_days_final=true
) }}
-- Per user, item category and event day: impressions, clicks and purchases (inputs of user_category_features).
-- An incremental table by event day: a run re-aggregates only the event days it rewrites (partition_start), so
-- the windows downstream read a compact table instead of every raw event. A stored day is final (its rows come from
-- that day's events only): the daily run for D aggregates D alone (after_newest).
with

events as (

    select * from {{ ref('int_events') }}
    where {{ partition_filter('event_date', after_newest=true) }}

),

daily as (

    select
        user_id,
        category_id,
        event_date,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'purchase') as purchases

    from events
    where category_id is not null
    group by user_id, category_id, event_date

)

select * from daily
