{#- An incremental run reads only the raw partitions it needs (events_start): never the older history. -#}
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

    -- a partition re-landed twice must not double-count: keep one row per event, from the latest partition
    {{ latest_row('renamed', 'event_id', 'dt desc, event_ts desc') }}

)

select * from deduplicated
