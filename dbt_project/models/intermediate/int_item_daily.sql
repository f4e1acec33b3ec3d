-- Per item and event day: impressions, clicks, purchases and units sold (the inputs of the windowed item features).
with

events as (

    select * from {{ ref('int_events') }}

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
