-- Per user and feature day D (users with events in [D-30, D) only): the 30-day activity sums, clicks per
-- category, yesterday's ([D-1, D)) activity and the last active day before D; the shared windowing of
-- user_features and user_window_features.
{%- set window_days = var('user_window_days') | int %}
{%- set yesterday = 'user_daily.event_date >= ' ~ add_days('spine.feature_date', -1) %}

with

spine as (

    select feature_date from {{ ref('int_day_spine') }}

),

user_daily as (

    -- only the days the spine's windows reach: an incremental run's spine holds a few days
    select *
    from {{ ref('int_user_daily') }}
    where event_date >= {{ add_days('(select min(feature_date) from spine)', -window_days) }}

),

windowed as (

    select
        spine.feature_date,
        user_daily.user_id,
        sum(user_daily.impressions) as impressions_30d,
        sum(user_daily.clicks) as clicks_30d,
        sum(user_daily.purchases) as purchases_30d,
        sum(user_daily.click_price_sum) as click_price_sum_30d,
        sum(user_daily.click_price_n) as click_price_n_30d,
        {%- for c in range(n_categories()) %}
        sum(user_daily.clicks_cat_{{ cat_suffix(c) }}) as clicks_cat_{{ cat_suffix(c) }}_30d,
        {%- endfor %}
        {%- for measure in ('impressions', 'clicks', 'purchases') %}
        sum(case when {{ yesterday }} then user_daily.{{ measure }} else 0 end) as {{ measure }}_1d,
        {%- endfor %}
        max(user_daily.event_date) as last_active_date

    from spine
    inner join user_daily
        on user_daily.event_date >= {{ add_days('spine.feature_date', -window_days) }}
        and user_daily.event_date < spine.feature_date
    group by spine.feature_date, user_daily.user_id

)

select * from windowed
