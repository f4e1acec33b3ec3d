{{ config(post_hook="{{ export_mart('dt, item_id') }}") }}
-- One row per item (created before D) and feature day D: catalogue attributes, the latest stock snapshot taken
-- at or before D 00:00 UTC, and 7-day engagement over [D-7, D) with smoothed rates. Incremental: a run for day D
-- rewrites feature days D (whose stock snapshot lands with day D's data) and D + 1.
{%- set new_item_days = var('new_item_days') | int %}

with

engagement as (

    select *
    from {{ ref('int_item_engagement_7d') }}
    where {{ partition_filter('feature_date') }}

),

items as (

    select * from {{ ref('stg_items') }}

),

inventory as (

    select item_id, snapshot_ts, stock_units from {{ ref('stg_inventory') }}

),

with_stock as (

    -- the latest snapshot at or before feature_ts
    select
        engagement.*,
        inventory.stock_units

    from {{ asof_left_join('engagement', 'inventory', 'item_id', 'feature_ts', 'snapshot_ts', ['stock_units']) }}

),

final as (

    select
        with_stock.item_id,
        with_stock.feature_ts,
        items.item_type_code,
        items.category_id as item_category_id,
        items.seller_id as item_seller_id,
        items.price as item_price,
        cast(with_stock.stock_units as {{ float8() }}) as item_stock_units,
        cast({{ seconds_between('items.created_ts', 'with_stock.feature_ts') }} as {{ float8() }}) / 86400.0 as item_age_days,
        with_stock.item_impressions_7d,
        with_stock.item_clicks_7d,
        with_stock.item_purchases_7d,
        with_stock.item_ctr_7d,
        with_stock.item_cvr_7d,
        cast(
            case
                when {{ seconds_between('items.created_ts', 'with_stock.feature_ts') }} < {{ new_item_days }} * 86400
                    then 1
                else 0
            end as bigint
        ) as item_is_new,
        with_stock.feature_date as dt

    from with_stock
    inner join items on with_stock.item_id = items.item_id

)

select * from final
