{{ config(
    materialized='incremental', incremental_strategy=partition_strategy(), unique_key='event_date',
    partition_by=partition_key('event_date'), on_schema_change='fail', stored_days_final=true
) }}
-- Per item and event day: impressions, clicks, purchases and units sold (the inputs of the windowed item features).
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
        item_id,
        event_date,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'purchase') as purchases,
        coalesce(sum(quantity) filter (where event_type = 'purchase'), 0) as units_sold

    from events
    group by item_id, event_date

)

select * from daily
