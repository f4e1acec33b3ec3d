{{ config(
    materialized='incremental', incremental_strategy=partition_strategy(), unique_key='event_date',
    partition_by=partition_key('event_date'), on_schema_change='fail', stored_days_final=true
) }}
-- Per user and event day: activity counts and clicks per category (the inputs of the 30-day user features).
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
        event_date,
        count(*) filter (where event_type = 'impression') as impressions,
        count(*) filter (where event_type = 'click') as clicks,
        count(*) filter (where event_type = 'purchase') as purchases,
        -- exact decimal sums: float sums would depend on the (parallel) summation order, breaking idempotency
        sum(cast(item_price as decimal(18, 4))) filter (where event_type = 'click') as click_price_sum,
        count(item_price) filter (where event_type = 'click') as click_price_n
        {%- for c in range(n_categories()) %},
        count(*) filter (where event_type = 'click' and category_id = {{ c }}) as clicks_cat_{{ cat_suffix(c) }}
        {%- endfor %}

    from events
    group by user_id, event_date

)

select * from daily
