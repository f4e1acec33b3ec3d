-- Per user, item category and event day: impressions, clicks and purchases (inputs of user_category_features).
with

events as (

    select * from {{ ref('int_events') }}

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
