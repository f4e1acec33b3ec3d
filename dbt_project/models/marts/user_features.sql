{{ config(post_hook="{{ export_mart('dt, user_id', by_day='dt') }}") }}
-- One row per user (signed up before D) and feature day D; every feature uses only events before D 00:00 UTC,
-- over the window [D-30, D). The last day (run's day + 1) is the snapshot serving reads. Incremental: a run for
-- day D rewrites feature days D and D + 1 (see partition_start), exported one file per feature day
-- (shoprank/mart_files.py).
{%- set n_cat = n_categories() %}

with

spine as (

    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date') }}

),

users as (

    select user_id, signup_ts from {{ ref('stg_users') }}

),

first_activity as (

    select user_id, min(event_date) as first_event_date
    from {{ ref('int_user_daily') }}
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

    select *
    from {{ ref('int_user_windows') }}
    where {{ partition_filter('feature_date') }}

),

final as (

    select
        user_days.user_id,
        user_days.feature_ts,
        cast(coalesce(windowed.impressions_30d, 0) as bigint) as user_impressions_30d,
        cast(coalesce(windowed.clicks_30d, 0) as bigint) as user_clicks_30d,
        cast(coalesce(windowed.purchases_30d, 0) as bigint) as user_purchases_30d,
        {{ smoothed_rate('coalesce(windowed.clicks_30d, 0)', 'coalesce(windowed.impressions_30d, 0)', 0.05, 20) }}
            as user_ctr_30d,
        cast(windowed.click_price_sum_30d as {{ float8() }}) / nullif(windowed.click_price_n_30d, 0)
            as user_avg_click_price_30d,
        cast(
            case
                when first_activity.first_event_date < user_days.feature_date then 0
                else 1
            end as bigint
        ) as user_is_cold_start,
        {%- for c in range(n_cat) %}
        cast(
            coalesce(
                cast(windowed.clicks_cat_{{ cat_suffix(c) }}_30d as {{ float8() }}) / nullif(windowed.clicks_30d, 0), 0
            ) as {{ float8() }}
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
