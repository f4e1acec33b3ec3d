-- Per item and event day: impressions, clicks and purchases (the inputs of the 7-day item features).
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
        count(*) filter (where event_type = 'purchase') as purchases

    from events
    group by item_id, event_date

)

select * from daily
