{{ config(location=env_var('SHOPRANK_MARTS_EXPORT_DIR') ~ '/item_features.parquet') }}
-- One row per item (created before D) and feature day D: catalogue attributes, the latest stock snapshot taken
-- at or before D 00:00 UTC, and 7-day engagement over [D-7, D) with smoothed rates.
{%- set new_item_days = var('new_item_days') | int %}

with

engagement as (

    select * from {{ ref('int_item_engagement_7d') }}

),

items as (

    select * from {{ ref('stg_items') }}

),

inventory as (

    select item_id, snapshot_ts, stock_units from {{ ref('stg_inventory') }}

),

with_stock as (

    select
        engagement.*,
        inventory.stock_units

    from engagement
    asof left join inventory
        on engagement.item_id = inventory.item_id
        and engagement.feature_ts >= inventory.snapshot_ts

),

final as (

    select
        with_stock.item_id,
        with_stock.feature_ts,
        items.item_type_code,
        items.category_id as item_category_id,
        items.seller_id as item_seller_id,
        items.price as item_price,
        cast(with_stock.stock_units as double) as item_stock_units,
        cast(date_diff('second', items.created_ts, with_stock.feature_ts) as double) / 86400.0 as item_age_days,
        with_stock.item_impressions_7d,
        with_stock.item_clicks_7d,
        with_stock.item_purchases_7d,
        with_stock.item_ctr_7d,
        with_stock.item_cvr_7d,
        cast(
            case
                when date_diff('second', items.created_ts, with_stock.feature_ts) < {{ new_item_days }} * 86400 then 1
                else 0
            end as bigint
        ) as item_is_new,
        with_stock.feature_date as dt

    from with_stock
    inner join items on with_stock.item_id = items.item_id

)

select * from final
order by dt, item_id
