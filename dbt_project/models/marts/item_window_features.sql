{{ config(post_hook="{{ export_mart('dt, item_id', by_day='dt') }}") }}
-- One row per item (created before D) and feature day D, keyed like item_features (item_id, feature_ts): counts
-- over [D-1, D), [D-7, D) and [D-30, D), CTR / CVR smoothed toward the item's CATEGORY prior of the same window,
-- the popularity trend, and days of cover (stock at D 00:00 over the last 7 days' daily units sold).
-- Kept apart from item_features so that mart's column contract (Feast views, training, serving) stays as it is.
-- Incremental: a run for day D rewrites feature days D and D + 1,
-- exported one file per feature day (shoprank/mart_files.py).

with

spine as (

    select feature_date, feature_ts
    from {{ ref('int_day_spine') }}
    where {{ partition_filter('feature_date') }}

),

rates as (

    select *
    from {{ ref('int_item_rates') }}
    where {{ partition_filter('feature_date') }}

),

inventory as (

    select item_id, snapshot_ts, stock_units from {{ ref('stg_inventory') }}

),

dated as (

    select
        rates.*,
        spine.feature_ts

    from rates
    inner join spine on rates.feature_date = spine.feature_date

),

with_stock as (

    -- the latest snapshot at or before feature_ts
    select
        dated.*,
        inventory.stock_units

    from {{ asof_left_join('dated', 'inventory', 'item_id', 'feature_ts', 'snapshot_ts', ['stock_units']) }}

),

final as (

    select
        item_id,
        feature_ts,
        {%- for days in (1, 7, 30) %}
        cast(item_impressions_{{ days }}d as bigint) as item_impressions_{{ days }}d,
        cast(item_clicks_{{ days }}d as bigint) as item_clicks_{{ days }}d,
        cast(item_purchases_{{ days }}d as bigint) as item_purchases_{{ days }}d,
        cast(item_units_sold_{{ days }}d as bigint) as item_units_sold_{{ days }}d,
        cast(item_ctr_{{ days }}d_cat as {{ float8() }}) as item_ctr_{{ days }}d_cat,
        cast(item_cvr_{{ days }}d_cat as {{ float8() }}) as item_cvr_{{ days }}d_cat,
        {%- endfor %}
        cast(item_popularity_trend as {{ float8() }}) as item_popularity_trend,
        -- Capped at a year, and a year when nothing sold in the last 7 days; null without a stock snapshot yet.
        cast(
            case
                when stock_units is null then null
                else least(
                    coalesce(stock_units / nullif(cast(item_units_sold_7d as {{ float8() }}) / 7.0, 0), 365.0), 365.0
                )
            end as {{ float8() }}
        ) as item_days_of_cover,
        feature_date as dt

    from with_stock

)

select * from final
