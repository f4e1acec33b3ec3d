-- Per feature day D and category: the category's CTR and CVR over the 1/7/30-day windows before D, the priors
-- item rates are smoothed toward (the fallback priors when a window holds no events, e.g. the first day).
with

spine as (

    select feature_date from {{ ref('int_day_spine') }}

),

items as (

    select item_id, category_id from {{ ref('stg_items') }}

),

categories as (

    select distinct category_id from items

),

windows as (

    select * from {{ ref('int_item_windows') }}

),

per_category as (

    select
        windows.feature_date,
        items.category_id,
        {%- for days in (1, 7, 30) %}
        sum(windows.impressions_{{ days }}d) as impressions_{{ days }}d,
        sum(windows.clicks_{{ days }}d) as clicks_{{ days }}d,
        sum(windows.purchases_{{ days }}d) as purchases_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from windows
    inner join items on windows.item_id = items.item_id
    group by windows.feature_date, items.category_id

),

final as (

    select
        spine.feature_date,
        categories.category_id,
        {%- for days in (1, 7, 30) %}
        cast(coalesce(
            cast(per_category.clicks_{{ days }}d as {{ float8() }}) / nullif(per_category.impressions_{{ days }}d, 0),
            {{ var('fallback_ctr_prior') }}
        ) as {{ float8() }}) as category_ctr_{{ days }}d,
        cast(coalesce(
            cast(per_category.purchases_{{ days }}d as {{ float8() }}) / nullif(per_category.clicks_{{ days }}d, 0),
            {{ var('fallback_cvr_prior') }}
        ) as {{ float8() }}) as category_cvr_{{ days }}d{{ ',' if not loop.last }}
        {%- endfor %}

    from spine
    cross join categories
    left join per_category
        on spine.feature_date = per_category.feature_date
        and categories.category_id = per_category.category_id

)

select * from final
