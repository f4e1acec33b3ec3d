-- Per item (created before D) and feature day D: 7-day counts over [D-7, D) and rates smoothed toward the
-- window's global rates (with fixed fallbacks when the window holds no events, i.e. the first day).
{%- set window_days = var('item_window_days') | int %}

with

spine as (

    select feature_date, feature_ts from {{ ref('int_day_spine') }}

),

items as (

    select item_id, created_ts from {{ ref('stg_items') }}

),

item_daily as (

    -- only the days the spine's windows reach: an incremental run's spine holds a few days
    select *
    from {{ ref('int_item_daily') }}
    where event_date >= {{ add_days('(select min(feature_date) from spine)', -window_days) }}

),

item_days as (

    select
        items.item_id,
        spine.feature_date,
        spine.feature_ts

    from spine
    inner join items on items.created_ts < spine.feature_ts

),

windowed as (

    select
        spine.feature_date,
        item_daily.item_id,
        sum(item_daily.impressions) as impressions,
        sum(item_daily.clicks) as clicks,
        sum(item_daily.purchases) as purchases

    from spine
    inner join item_daily
        on item_daily.event_date >= {{ add_days('spine.feature_date', -window_days) }}
        and item_daily.event_date < spine.feature_date
    group by spine.feature_date, item_daily.item_id

),

priors as (

    select
        spine.feature_date,
        coalesce(
            cast(sum(windowed.clicks) as {{ float8() }}) / nullif(sum(windowed.impressions), 0),
            {{ var('fallback_ctr_prior') }}
        ) as prior_ctr,
        coalesce(
            cast(sum(windowed.purchases) as {{ float8() }}) / nullif(sum(windowed.clicks), 0),
            {{ var('fallback_cvr_prior') }}
        ) as prior_cvr

    from spine
    left join windowed on spine.feature_date = windowed.feature_date
    group by spine.feature_date

),

counted as (

    select
        item_days.item_id,
        item_days.feature_date,
        item_days.feature_ts,
        cast(coalesce(windowed.impressions, 0) as bigint) as item_impressions_7d,
        cast(coalesce(windowed.clicks, 0) as bigint) as item_clicks_7d,
        cast(coalesce(windowed.purchases, 0) as bigint) as item_purchases_7d,
        cast(priors.prior_ctr as {{ float8() }}) as prior_ctr,
        cast(priors.prior_cvr as {{ float8() }}) as prior_cvr

    from item_days
    inner join priors on item_days.feature_date = priors.feature_date
    left join windowed
        on item_days.item_id = windowed.item_id
        and item_days.feature_date = windowed.feature_date

),

final as (

    select
        *,
        {{ smoothed_rate('item_clicks_7d', 'item_impressions_7d', 'prior_ctr', var('item_ctr_prior_weight')) }}
            as item_ctr_7d,
        {{ smoothed_rate('item_purchases_7d', 'item_clicks_7d', 'prior_cvr', var('item_cvr_prior_weight')) }}
            as item_cvr_7d

    from counted

)

select * from final
