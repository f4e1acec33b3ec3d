{{ config(post_hook="{{ export_mart('dt, request_id, position, impression_id', by_day='dt') }}") }}
-- One row per impression up to the run's day, labelled by the later click / add-to-cart / purchase of the same
-- item in the same request. Incremental: a run for day D rewrites days D - 1 (an outcome after midnight lands a
-- day after its impression) and D.

with

events as (

    select * from {{ ref('int_events') }}

),

impressions as (

    select
        event_id as impression_id,
        request_id,
        user_id,
        item_id,
        event_ts,
        position,
        surface,
        event_date

    from events
    where event_type = 'impression' and {{ partition_filter('event_date', -1) }}

),

outcomes as (

    select request_id, item_id, event_type, event_ts
    from events
    -- outcomes follow their impression, so none of a rewritten impression's is older than the first rewritten day
    where event_type in ('click', 'add_to_cart', 'purchase') and {{ partition_filter('event_date', -1) }}

),

labelled as (

    select
        impressions.impression_id,
        max(case when outcomes.event_type = 'click' then 1 else 0 end) as label_click,
        max(case when outcomes.event_type = 'add_to_cart' then 1 else 0 end) as label_cart,
        max(case when outcomes.event_type = 'purchase' then 1 else 0 end) as label_purchase

    from impressions
    inner join outcomes
        on impressions.request_id = outcomes.request_id
        and impressions.item_id = outcomes.item_id
        and outcomes.event_ts >= impressions.event_ts
    group by impressions.impression_id

),

final as (

    select
        impressions.impression_id,
        impressions.request_id,
        impressions.user_id,
        impressions.item_id,
        impressions.event_ts,
        cast(impressions.position as bigint) as position,
        impressions.surface,
        cast(coalesce(labelled.label_click, 0) as bigint) as label_click,
        cast(coalesce(labelled.label_cart, 0) as bigint) as label_cart,
        cast(coalesce(labelled.label_purchase, 0) as bigint) as label_purchase,
        cast(
            case
                when labelled.label_purchase = 1 then 3
                when labelled.label_cart = 1 then 2
                when labelled.label_click = 1 then 1
                else 0
            end as bigint
        ) as relevance,
        impressions.event_date as dt

    from impressions
    left join labelled on impressions.impression_id = labelled.impression_id

)

select * from final
