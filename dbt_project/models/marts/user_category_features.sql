{{ config(post_hook="{{ export_mart('dt, user_id, category_id') }}") }}
-- One row per (user, item category, feature day D) with impressions in [D-30, D): the user's engagement with the
-- category, the CTR smoothed toward the user's own 30-day CTR, and the category's share of the user's clicks.
-- Pairs without impressions have no row (serving and training treat them as zero). Incremental: a run for day D
-- rewrites feature days D and D + 1.
{%- set window_days = var('user_window_days') | int %}

with

spine as (

    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date') }}

),

daily as (

    -- only the days the rewritten feature days' windows reach
    select *
    from {{ ref('int_user_category_daily') }}
    where event_date >= {{ add_days('(select min(feature_date) from spine)', -window_days) }}

),

windowed as (

    select
        spine.feature_date,
        spine.feature_ts,
        daily.user_id,
        daily.category_id,
        sum(daily.impressions) as impressions,
        sum(daily.clicks) as clicks,
        sum(daily.purchases) as purchases

    from spine
    inner join daily
        on daily.event_date >= {{ add_days('spine.feature_date', -window_days) }}
        and daily.event_date < spine.feature_date
    group by spine.feature_date, spine.feature_ts, daily.user_id, daily.category_id

),

with_user as (

    select
        *,
        sum(impressions) over (partition by user_id, feature_date) as user_impressions,
        sum(clicks) over (partition by user_id, feature_date) as user_clicks

    from windowed

),

final as (

    select
        user_id,
        cast(category_id as bigint) as category_id,
        feature_ts,
        cast(impressions as bigint) as uc_impressions_30d,
        cast(clicks as bigint) as uc_clicks_30d,
        cast(purchases as bigint) as uc_purchases_30d,
        {{ smoothed_rate('clicks', 'impressions',
            '(cast(user_clicks as ' ~ float8() ~ ') + ' ~ var('fallback_ctr_prior') ~ ' * 20) / (user_impressions + 20)',
            10) }} as uc_ctr_30d,
        cast(coalesce(cast(clicks as {{ float8() }}) / nullif(user_clicks, 0), 0) as {{ float8() }}) as uc_click_share_30d,
        feature_date as dt

    from with_user
    where impressions > 0

)

select * from final
