{{ config(
    materialized='incremental', incremental_strategy=partition_strategy(), unique_key='dt',
    partition_by=partition_key('dt'), on_schema_change='fail'
) }}
{#- A table, incremental by raw partition day (dt, the event's UTC date: the raw gate keeps events inside their
    partition's day): an incremental run reads, types and deduplicates only the raw partitions from its first
    rewritten day on (events_start: the daily run reads D's alone), once; every model downstream (the 7-day
    retrieval windows included) reads the stored days instead of re-scanning raw history through a view. -#}
{%- set first_day = events_start_day() %}
{%- set anti_join = first_day is not none and target.type != 'spark' %}

with

source as (

    {%- if first_day %}
    select * from {{ raw_partitions(source('raw', 'events'), 'events', "date '" ~ first_day.isoformat() ~ "'") }}
    where dt >= date '{{ first_day.isoformat() }}'
    {%- else %}
    select * from {{ source('raw', 'events') }}
    {%- endif %}

),

renamed as (

    select
        cast(event_id as {{ varchar() }}) as event_id,
        cast(event_ts as {{ timestamptz() }}) as event_ts,
        cast(event_type as {{ varchar() }}) as event_type,
        cast(user_id as {{ varchar() }}) as user_id,
        cast(item_id as {{ varchar() }}) as item_id,
        cast(request_id as {{ varchar() }}) as request_id,
        cast(position as bigint) as position,
        cast(surface as {{ varchar() }}) as surface,
        cast(query as {{ varchar() }}) as query,
        cast(price as {{ float8() }}) as price,
        cast(quantity as bigint) as quantity,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    -- an event landed twice (a partition re-landed, or an id sent again the next day) must not double-count: keep
    -- one row per event, from the earliest partition that holds it (the latest event_ts within one partition)
    {{ latest_row('renamed', 'event_id', 'dt, event_ts desc') }}

){% if anti_join %},

stored as (

    -- the stored day before the first day read: the copy of an id it already holds wins (a full build would keep
    -- that earlier copy too); only that partition is read (its row groups by min/max on dt), not the raw history
    select event_id
    from {{ this }}
    where dt = date '{{ (first_day - modules.datetime.timedelta(days=1)).isoformat() }}'

),

final as (

    select deduplicated.*
    from deduplicated
    where not exists (select 1 from stored where stored.event_id = deduplicated.event_id)

)

select * from final
{%- else %}

select * from deduplicated
{%- endif %}
