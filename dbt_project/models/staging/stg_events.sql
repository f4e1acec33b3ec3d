{{ config(
    materialized='incremental', incremental_strategy=partition_strategy(), unique_key='dt',
    partition_by=partition_key('dt'), on_schema_change='fail'
) }}
{#- A table, incremental by raw partition day (dt, the event's UTC date: the raw gate keeps events inside their
    partition's day): an incremental run reads, types and deduplicates only the raw partitions from its first
    rewritten day on (events_start), once; every model downstream (the 7-day retrieval windows included) reads the
    stored days instead of re-scanning raw history through a view. -#}
{%- set first_day = events_start() %}

with

source as (

    {%- if first_day %}
    select * from {{ raw_partitions(source('raw', 'events'), 'events', first_day) }}
    where dt >= {{ first_day }}
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

    -- a partition re-landed twice must not double-count: keep one row per event, from the latest partition (of
    -- those read: an incremental run leaves an older stored day's copy of an id it re-reads in a later day alone)
    {{ latest_row('renamed', 'event_id', 'dt desc, event_ts desc') }}

)

select * from deduplicated
