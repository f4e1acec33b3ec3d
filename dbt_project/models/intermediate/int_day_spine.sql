-- One row per feature day D, from the first raw day (an incremental run: the first day it rewrites, run_start) up
-- to the run's day + 1 (the serving snapshot). feature_ts = D 00:00 UTC; features stamped with it use only events
-- strictly before it. A table: every model and the marts' data tests read it.
{{ config(materialized='table') }}
{%- set run_date = run_date_literal() %}
{%- set first_day = run_start() %}

with

event_days as (

    select
        min(dt) as first_day,
        max({{ utc_date('event_ts') }}) as last_event_day

    from {{ ref('stg_events') }}

),

bounds as (

    select
        {{ "date '" ~ first_day.isoformat() ~ "'" if first_day else 'first_day' }} as first_day,
        {{ run_date if run_date else 'last_event_day' }} as run_date

    from event_days

),

days as (

    {{ day_series('bounds', 'bounds.first_day', add_days('bounds.run_date', 1), 'feature_date') }}

),

final as (

    select
        days.feature_date,
        {{ utc_midnight('days.feature_date') }} as feature_ts,
        bounds.run_date

    from days
    cross join bounds

)

select * from final
