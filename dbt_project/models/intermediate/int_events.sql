-- Events up to the end of the run's day, with the item's category and a UTC event date.
with

events as (

    select * from {{ ref('stg_events') }}

),

items as (

    select * from {{ ref('stg_items') }}

),

run as (

    select max(run_date) as run_date from {{ ref('int_day_spine') }}

),

enriched as (

    select
        events.event_id,
        events.event_ts,
        -- the raw partition's day: the raw gate keeps every event inside it (stg_events tests dt = the UTC date),
        -- and the models' filters on event_date then skip stg_events' older days by their min/max instead of
        -- converting every stored event's timestamp
        events.dt as event_date,
        events.event_type,
        events.user_id,
        events.item_id,
        events.request_id,
        events.position,
        events.surface,
        events.query,
        events.price,
        events.quantity,
        items.category_id,
        items.title as item_title,
        coalesce(events.price, items.price) as item_price

    from events
    left join items on events.item_id = items.item_id

),

final as (

    select enriched.*
    from enriched
    cross join run
    where enriched.event_date <= run.run_date

)

select * from final
