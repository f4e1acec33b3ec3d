{#- One row per request served under an experiment, per experiment it ran under (a user is in one arm of every
    running experiment; the service logs them all as JSON {experiment: arm}). The exposure side of the online
    analysis (quality/experiments/exposure.py). DuckDB only: it reads the service's parquet logs in place. -#}
{{ config(materialized='view', enabled=(target.type == 'duckdb')) }}

with

requests as (

    select * from {{ serving_log('requests',
        "null::varchar as request_id, null::timestamptz as request_ts, null::varchar as user_id,
         null::varchar as assignments, null::varchar as interleave_teams, null::double as latency_ms,
         null::boolean as degraded") }}

)

select
    cast(r.request_id as varchar) as request_id,
    cast(r.request_ts as timestamptz) as request_ts,
    cast(cast(r.request_ts as timestamptz) as date) as dt,
    cast(r.user_id as varchar) as user_id,
    cast(a.key as varchar) as experiment,
    cast(a.value ->> '$' as varchar) as arm,
    cast(r.interleave_teams as varchar) as interleave_teams,
    cast(r.latency_ms as double) as latency_ms,
    cast(r.degraded as boolean) as degraded

from requests as r, json_each(r.assignments) as a
where r.assignments is not null
