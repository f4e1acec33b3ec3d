{#- Per served request, what followed: the impressions the service logged and the clicks and purchases reported to
    POST /events with the request id (the service's events log, raw events contract). The outcome side of the
    online analysis (quality/experiments/exposure.py); join to experiment_exposures on request_id. -#}
{{ config(materialized='view', enabled=(target.type == 'duckdb')) }}

with

events as (

    select * from {{ serving_log('events',
        "null::varchar as request_id, null::varchar as event_type, null::double as price,
         null::bigint as quantity") }}

)

select
    cast(request_id as varchar) as request_id,
    count(*) filter (where event_type = 'impression') as impressions,
    count(*) filter (where event_type = 'click') as clicks,
    count(*) filter (where event_type = 'purchase') as purchases,
    coalesce(sum(price * coalesce(quantity, 1)) filter (where event_type = 'purchase'), 0) as gmv

from events
where request_id is not null
group by request_id
