-- Per item and feature day D: impressions, clicks, purchases and units sold over [D-1, D), [D-7, D) and
-- [D-30, D) (only item-days with events in the 30-day window; the rest count zero downstream).
with

spine as (

    select feature_date from {{ ref('int_day_spine') }}

),

item_daily as (

    -- only the days the spine's windows reach: an incremental run's spine holds a few days
    select *
    from {{ ref('int_item_daily') }}
    where event_date >= {{ add_days('(select min(feature_date) from spine)', -30) }}

),

joined as (

    select
        spine.feature_date,
        item_daily.*

    from spine
    inner join item_daily
        on item_daily.event_date >= {{ add_days('spine.feature_date', -30) }}
        and item_daily.event_date < spine.feature_date

),

final as (

    select
        item_id,
        feature_date,
        {%- for days in (1, 7, 30) %}
        {%- for measure in ('impressions', 'clicks', 'purchases', 'units_sold') %}
        cast(sum(case when event_date >= {{ add_days('feature_date', -days) }} then {{ measure }} else 0 end)
            as bigint) as {{ measure }}_{{ days }}d{{ ',' if not loop.last or days != 30 }}
        {%- endfor %}
        {%- endfor %}

    from joined
    group by item_id, feature_date

)

select * from final
