{{ config(post_hook="{{ export_mart('dt, user_id', by_day='dt') }}") }}
-- One row per user (signed up before D) and feature day D, keyed like user_features (user_id, feature_ts):
-- short-term activity (yesterday, [D-1, D)), the last active day before D (the raw contract has no session ids:
-- a user's last active day stands in for the last session), the 30-day purchase rate per click and price band.
-- Kept apart from user_features so that mart's column contract (Feast, training, serving) stays as it is; both
-- read their windows from int_user_windows. Incremental: a run for day D rewrites feature days D and D + 1,
-- exported one file per feature day (shoprank/mart_files.py).
{%- set window_days = var('user_window_days') | int %}

with

spine as (

    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date') }}

),

users as (

    select user_id, signup_ts from {{ ref('stg_users') }}

),

user_daily as (

    -- only the days the rewritten feature days' windows reach (the last active day is one of them)
    select *
    from {{ ref('int_user_daily') }}
    where event_date >= {{ add_days('(select min(feature_date) from spine)', -window_days) }}

),

user_days as (

    select users.user_id, spine.feature_date, spine.feature_ts
    from spine
    inner join users on users.signup_ts < spine.feature_ts

),

windowed as (

    select *
    from {{ ref('int_user_windows') }}
    where {{ partition_filter('feature_date') }}

),

final as (

    select
        user_days.user_id,
        user_days.feature_ts,
        cast(coalesce(windowed.impressions_1d, 0) as bigint) as user_impressions_1d,
        cast(coalesce(windowed.clicks_1d, 0) as bigint) as user_clicks_1d,
        cast(coalesce(windowed.purchases_1d, 0) as bigint) as user_purchases_1d,
        {{ smoothed_rate('coalesce(windowed.clicks_1d, 0)', 'coalesce(windowed.impressions_1d, 0)',
            var('fallback_ctr_prior'), 10) }} as user_ctr_1d,
        {{ smoothed_rate('coalesce(windowed.purchases_30d, 0)', 'coalesce(windowed.clicks_30d, 0)',
            var('fallback_cvr_prior'), var('item_cvr_prior_weight')) }} as user_purchase_rate_30d,
        -- Price band of the clicked items' mean price: 0 (< 15), 1 (< 30), 2 (< 60), 3; -1 without clicks.
        cast(
            case
                when coalesce(windowed.click_price_n_30d, 0) = 0 then -1
                when windowed.click_price_sum_30d / windowed.click_price_n_30d < 15 then 0
                when windowed.click_price_sum_30d / windowed.click_price_n_30d < 30 then 1
                when windowed.click_price_sum_30d / windowed.click_price_n_30d < 60 then 2
                else 3
            end as bigint
        ) as user_price_band,
        cast({{ days_between('windowed.last_active_date', 'user_days.feature_date') }} as bigint)
            as user_days_since_active,
        cast(coalesce(last_day.impressions, 0) as bigint) as user_last_active_day_impressions,
        cast(coalesce(last_day.clicks, 0) as bigint) as user_last_active_day_clicks,
        user_days.feature_date as dt

    from user_days
    left join windowed
        on user_days.user_id = windowed.user_id
        and user_days.feature_date = windowed.feature_date
    left join user_daily as last_day
        on user_days.user_id = last_day.user_id
        and windowed.last_active_date = last_day.event_date

)

select * from final
