{{ config(post_hook="{{ export_mart('dt, user_id, category_id') }}") }}
-- One row per (user, item category, feature day D) with impressions in [D-30, D): the user's engagement with the
-- category, the CTR smoothed toward the user's own 30-day CTR, the category's share of the user's clicks, and the
-- user's long-term taste for the category (uc_taste_30d: shoprank/taste.py's Gamma-Poisson posterior of the user's
-- click-rate ratio against the window's population CTR, its prior fitted over all pairs of the window).
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
        sum(clicks) over (partition by user_id, feature_date) as user_clicks,
        -- clicks an average user would have made on what this user was shown (the window population's CTR)
        impressions * coalesce(
            cast(sum(clicks) over (partition by feature_date) as {{ float8() }})
            / nullif(sum(impressions) over (partition by feature_date), 0),
            {{ var('fallback_ctr_prior') }}
        ) as expected_clicks

    from windowed

),

taste_prior as (

    -- method of moments over the window's pairs: 1 / shape = sum((clicks - expected)^2 - expected) / sum(expected^2)
    select
        feature_date,
        case
            when sum(expected_clicks * expected_clicks) > 0
                and sum((clicks - expected_clicks) * (clicks - expected_clicks) - expected_clicks) > 0
                then least(greatest(
                    sum(expected_clicks * expected_clicks)
                    / sum((clicks - expected_clicks) * (clicks - expected_clicks) - expected_clicks),
                    0.05), 100.0)
            else 100.0
        end as taste_shape

    from with_user
    group by feature_date

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
        cast(
            {{ digamma('taste_prior.taste_shape + clicks') }} - ln(taste_prior.taste_shape + expected_clicks)
            as {{ float8() }}
        ) as uc_taste_30d,
        with_user.feature_date as dt

    from with_user
    inner join taste_prior on with_user.feature_date = taste_prior.feature_date
    where impressions > 0

)

select * from final
