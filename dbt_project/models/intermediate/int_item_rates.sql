-- Per item (created before D) and feature day D: 1/7/30-day counts, CTR and CVR smoothed toward the item's
-- CATEGORY prior of the same window, (x + m * prior) / (n + m), so new items sit at their category's rate instead
-- of exploding; and the popularity trend: yesterday's impressions over the 7-day daily mean (+1 smoothed).
with

spine as (

    select feature_date, feature_ts from {{ ref('int_day_spine') }}

),

items as (

    select item_id, category_id, created_ts from {{ ref('stg_items') }}

),

windows as (

    select * from {{ ref('int_item_windows') }}

),

priors as (

    select * from {{ ref('int_category_priors') }}

),

item_days as (

    select
        items.item_id,
        items.category_id,
        spine.feature_date

    from spine
    inner join items on items.created_ts < spine.feature_ts

),

final as (

    select
        item_days.item_id,
        item_days.feature_date,
        {%- for days in (1, 7, 30) %}
        coalesce(windows.impressions_{{ days }}d, 0) as item_impressions_{{ days }}d,
        coalesce(windows.clicks_{{ days }}d, 0) as item_clicks_{{ days }}d,
        coalesce(windows.purchases_{{ days }}d, 0) as item_purchases_{{ days }}d,
        coalesce(windows.units_sold_{{ days }}d, 0) as item_units_sold_{{ days }}d,
        {{ smoothed_rate(
            'coalesce(windows.clicks_' ~ days ~ 'd, 0)', 'coalesce(windows.impressions_' ~ days ~ 'd, 0)',
            'priors.category_ctr_' ~ days ~ 'd', var('item_ctr_prior_weight')) }} as item_ctr_{{ days }}d_cat,
        {{ smoothed_rate(
            'coalesce(windows.purchases_' ~ days ~ 'd, 0)', 'coalesce(windows.clicks_' ~ days ~ 'd, 0)',
            'priors.category_cvr_' ~ days ~ 'd', var('item_cvr_prior_weight')) }} as item_cvr_{{ days }}d_cat,
        {%- endfor %}
        (cast(coalesce(windows.impressions_1d, 0) as {{ float8() }}) + 1.0)
            / (cast(coalesce(windows.impressions_7d, 0) as {{ float8() }}) / 7.0 + 1.0) as item_popularity_trend

    from item_days
    inner join priors
        on item_days.feature_date = priors.feature_date
        and item_days.category_id = priors.category_id
    left join windows
        on item_days.item_id = windows.item_id
        and item_days.feature_date = windows.feature_date

)

select * from final
