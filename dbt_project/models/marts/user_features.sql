{{ config(location=env_var('SHOPRANK_MARTS_EXPORT_DIR') ~ '/user_features.parquet') }}
-- One row per user (signed up before D) and feature day D; every feature uses only events before D 00:00 UTC,
-- over the window [D-30, D). The last day (run's day + 1) is the snapshot serving reads.
{%- set window_days = var('user_window_days') | int %}
{%- set n_cat = n_categories() %}

with

spine as (

    select feature_date, feature_ts from {{ ref('int_day_spine') }}

),

users as (

    select user_id, signup_ts from {{ ref('stg_users') }}

),

user_daily as (

    select * from {{ ref('int_user_daily') }}

),

first_activity as (

    select user_id, min(event_date) as first_event_date
    from user_daily
    group by user_id

),

user_days as (

    select
        users.user_id,
        spine.feature_date,
        spine.feature_ts

    from spine
    inner join users on users.signup_ts < spine.feature_ts

),

windowed as (

    select
        spine.feature_date,
        user_daily.user_id,
        sum(user_daily.impressions) as impressions,
        sum(user_daily.clicks) as clicks,
        sum(user_daily.purchases) as purchases,
        sum(user_daily.click_price_sum) as click_price_sum,
        sum(user_daily.click_price_n) as click_price_n
        {%- for c in range(n_cat) %},
        sum(user_daily.clicks_cat_{{ cat_suffix(c) }}) as clicks_cat_{{ cat_suffix(c) }}
        {%- endfor %}

    from spine
    inner join user_daily
        on user_daily.event_date >= spine.feature_date - interval {{ window_days }} day
        and user_daily.event_date < spine.feature_date
    group by spine.feature_date, user_daily.user_id

),

final as (

    select
        user_days.user_id,
        user_days.feature_ts,
        cast(coalesce(windowed.impressions, 0) as bigint) as user_impressions_30d,
        cast(coalesce(windowed.clicks, 0) as bigint) as user_clicks_30d,
        cast(coalesce(windowed.purchases, 0) as bigint) as user_purchases_30d,
        {{ smoothed_rate('coalesce(windowed.clicks, 0)', 'coalesce(windowed.impressions, 0)', 0.05, 20) }}
            as user_ctr_30d,
        cast(windowed.click_price_sum as double) / nullif(windowed.click_price_n, 0) as user_avg_click_price_30d,
        cast(
            case
                when first_activity.first_event_date < user_days.feature_date then 0
                else 1
            end as bigint
        ) as user_is_cold_start,
        {%- for c in range(n_cat) %}
        cast(
            coalesce(windowed.clicks_cat_{{ cat_suffix(c) }} / nullif(windowed.clicks, 0), 0) as double
        ) as user_cat_share_{{ cat_suffix(c) }},
        {%- endfor %}
        user_days.feature_date as dt

    from user_days
    left join windowed
        on user_days.user_id = windowed.user_id
        and user_days.feature_date = windowed.feature_date
    left join first_activity on user_days.user_id = first_activity.user_id

)

select * from final
order by dt, user_id
