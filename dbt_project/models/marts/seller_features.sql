{{ config(post_hook="{{ export_mart('dt, seller_id', by_day='dt') }}") }}
-- One row per seller (created before D) and feature day D: age, catalogue size and 7-day engagement of the
-- seller's items over [D-7, D), with rates smoothed toward the day's global rates (Feast view seller_features).
-- Incremental: a run for day D rewrites feature days D and D + 1,
-- exported one file per feature day (shoprank/mart_files.py).
{%- set new_seller_days = var('new_seller_days', var('new_item_days')) | int %}

with

spine as (

    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date') }}

),

sellers as (

    select seller_id, created_ts from {{ ref('stg_sellers') }}

),

items as (

    select item_id, seller_id from {{ ref('stg_items') }}

),

engagement as (

    select *
    from {{ ref('int_item_engagement_7d') }}
    where {{ partition_filter('feature_date') }}

),

seller_days as (

    select
        sellers.seller_id,
        sellers.created_ts,
        spine.feature_date,
        spine.feature_ts

    from spine
    inner join sellers on sellers.created_ts < spine.feature_ts

),

seller_engagement as (

    select
        items.seller_id,
        engagement.feature_date,
        count(*) as seller_items,
        sum(engagement.item_impressions_7d) as impressions,
        sum(engagement.item_clicks_7d) as clicks,
        sum(engagement.item_purchases_7d) as purchases,
        max(engagement.prior_ctr) as prior_ctr,
        max(engagement.prior_cvr) as prior_cvr

    from engagement
    inner join items on engagement.item_id = items.item_id
    group by items.seller_id, engagement.feature_date

),

final as (

    select
        seller_days.seller_id,
        seller_days.feature_ts,
        cast({{ seconds_between('seller_days.created_ts', 'seller_days.feature_ts') }} as {{ float8() }}) / 86400.0
            as seller_age_days,
        cast(
            case
                when {{ seconds_between('seller_days.created_ts', 'seller_days.feature_ts') }}
                    < {{ new_seller_days }} * 86400 then 1
                else 0
            end as bigint
        ) as seller_is_new,
        cast(coalesce(seller_engagement.seller_items, 0) as bigint) as seller_items,
        cast(coalesce(seller_engagement.impressions, 0) as bigint) as seller_impressions_7d,
        cast(coalesce(seller_engagement.clicks, 0) as bigint) as seller_clicks_7d,
        cast(coalesce(seller_engagement.purchases, 0) as bigint) as seller_purchases_7d,
        cast(
            {{ smoothed_rate('coalesce(seller_engagement.clicks, 0)', 'coalesce(seller_engagement.impressions, 0)',
                             'coalesce(seller_engagement.prior_ctr, ' ~ var('fallback_ctr_prior') ~ ')', 50) }}
            as {{ float8() }}
        ) as seller_ctr_7d,
        cast(
            {{ smoothed_rate('coalesce(seller_engagement.purchases, 0)', 'coalesce(seller_engagement.clicks, 0)',
                             'coalesce(seller_engagement.prior_cvr, ' ~ var('fallback_cvr_prior') ~ ')', 20) }}
            as {{ float8() }}
        ) as seller_cvr_7d,
        seller_days.feature_date as dt

    from seller_days
    left join seller_engagement
        on seller_days.seller_id = seller_engagement.seller_id
        and seller_days.feature_date = seller_engagement.feature_date

)

select * from final
