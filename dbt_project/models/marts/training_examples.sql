{{ config(
    relabel_key='impression_id',
    stored_days_final=true,
    post_hook="{{ export_mart('dt, request_id, position, impression_id', by_day='dt') }}"
) }}
-- One row per impression up to the run's day, labelled by the later click / add-to-cart / purchase of the same
-- item in the same request. Incremental: a run for day D writes day D whole and, of day D - 1, only the impressions
-- whose item has an outcome in the same request landing in D (a request across midnight): their labels are computed
-- again from both days' outcomes and replace the stored rows by impression_id (config relabel_key; the delete in
-- macros/incremental.sql: duckdb__get_delete_insert_merge_sql). A label only ever grows by a later outcome of the
-- same request and item, so every other stored row of D - 1 stays what a full build gives. On PostgreSQL and Spark
-- (whose delete+insert / insert overwrite replace whole days) the run rewrites D - 1 whole instead.
-- stored_days_final: a stored day before the run's is rewritten only by a relabelled row (macros/incremental.sql:
-- run_start, relabels_day_before), so the daily run's spine, exports and tests start at D unless one exists; when
-- the spine starts at D no impression of D - 1 gains a label, and the run reads D's events alone.
{%- set spine = ref('int_day_spine') %}
{%- set relabel = target.type == 'duckdb' and is_incremental() %}
{%- set first_day = partition_start(0, after_newest=true) if relabel else none %}
{%- set previous_day = none %}
{%- if first_day %}
{%- set previous = modules.datetime.date.fromisoformat(first_day[6:16]) - modules.datetime.timedelta(days=1) %}
{%- set spine_start = run_query('select min(feature_date) from ' ~ spine).columns[0].values()[0] %}
{%- if spine_start is none or (spine_start | string)[:10] <= previous.isoformat() %}
{%- set previous_day = "date '" ~ previous.isoformat() ~ "'" %}
{%- endif %}
{%- endif %}
{%- set rewritten = 'event_date >= ' ~ first_day if first_day else partition_filter('event_date', -1) %}

with

events as (

    select * from {{ ref('int_events') }}

),

{%- if previous_day %}

late_outcomes as (

    -- the (request, item) pairs with an outcome in the days written whole: of the day before, only their
    -- impressions can gain a label
    select distinct request_id, item_id
    from events
    where event_type in ('click', 'add_to_cart', 'purchase') and event_date >= {{ first_day }}

),

impressions as (

    select event_id as impression_id, request_id, user_id, item_id, event_ts, position, surface, event_date
    from events
    where event_type = 'impression' and event_date >= {{ first_day }}

    union all

    select
        events.event_id as impression_id,
        events.request_id,
        events.user_id,
        events.item_id,
        events.event_ts,
        events.position,
        events.surface,
        events.event_date

    from events
    inner join late_outcomes
        on events.request_id = late_outcomes.request_id
        and events.item_id = late_outcomes.item_id
    where events.event_type = 'impression' and events.event_date = {{ previous_day }}

),

outcomes as (

    select request_id, item_id, event_type, event_ts
    from events
    -- the relabelled impressions' outcomes of their own day too
    where event_type in ('click', 'add_to_cart', 'purchase') and event_date >= {{ previous_day }}

),

{%- else %}

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
    where event_type = 'impression' and {{ rewritten }}

),

outcomes as (

    select request_id, item_id, event_type, event_ts
    from events
    -- outcomes follow their impression, so none of a rewritten impression's is older than the first rewritten day
    where event_type in ('click', 'add_to_cart', 'purchase') and {{ rewritten }}

),

{%- endif %}

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
