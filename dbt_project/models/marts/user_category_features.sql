{{ config(
    run_partition_offset=1,
    post_hook="{{ export_mart('dt, user_id, category_id', by_day='dt') }}",
) }}
-- One row per (user, item category, feature day D) with impressions in [D-30, D): the user's engagement with the
-- category, the CTR smoothed toward the user's own 30-day CTR, the category's share of the user's clicks, and the
-- user's long-term taste for the category (uc_taste_30d: shoprank/taste.py's Gamma-Poisson posterior of the user's
-- click-rate ratio against the window's population CTR, its prior fitted over all pairs of the window).
-- Pairs without impressions have no row (serving and training treat them as zero). Incremental: a run for day D
-- writes feature day D + 1 alone (see the spine below; D was final after D-1's run). Exported one file per feature
-- day (<mart>/dt=YYYY-MM-DD.parquet): a run writes the days from the day spine's first day + 1 on.
{%- set window_days = var('user_window_days') | int %}

with

spine as (

    -- Feature day D counts events before D only (int_user_category_daily, by event day; the raw gate keeps every
    -- event in its own day's partition), so a stored feature day is final once the days before it are: the daily
    -- run for D writes D + 1 alone (offset 1, after_newest), a re-landed day R rewrites from R + 1.
    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date', 1, after_newest=true) }}

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

window_moments as (

    -- Integer sums only: exact, so a re-run or a day-by-day build gives the same bytes (a sum of floats over a
    -- day's pairs depends on the order DuckDB's threads add them in).
    select
        feature_date,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(impressions * impressions) as impressions_sq,
        sum(clicks * clicks) as clicks_sq,
        sum(clicks * impressions) as clicks_impressions

    from windowed
    group by feature_date

),

window_ctr as (

    -- the window population's CTR: expected clicks = impressions * ctr, what an average user would have clicked
    select
        *,
        coalesce(
            cast(clicks as {{ float8() }}) / nullif(impressions, 0), {{ var('fallback_ctr_prior') }}
        ) as ctr

    from window_moments

),

taste_prior as (

    -- method of moments over the window's pairs: 1 / shape = sum((clicks - expected)^2 - expected) / sum(expected^2),
    -- both sums expanded into the integer moments above
    select
        feature_date,
        ctr,
        ctr * ctr * cast(impressions_sq as {{ float8() }}) as expected_sq,
        cast(clicks_sq as {{ float8() }})
        - 2 * ctr * cast(clicks_impressions as {{ float8() }})
        + ctr * ctr * cast(impressions_sq as {{ float8() }})
        - ctr * cast(impressions as {{ float8() }}) as excess_variance

    from window_ctr

),

taste_shape as (

    select
        feature_date,
        ctr,
        case
            when expected_sq > 0 and excess_variance > 0
                then least(greatest(expected_sq / excess_variance, 0.05), 100.0)
            else 100.0
        end as taste_shape

    from taste_prior

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
            {{ digamma('taste_shape.taste_shape + clicks') }}
            - ln(taste_shape.taste_shape + impressions * taste_shape.ctr)
            as {{ float8() }}
        ) as uc_taste_30d,
        with_user.feature_date as dt

    from with_user
    inner join taste_shape on with_user.feature_date = taste_shape.feature_date
    where impressions > 0

)

select * from final
