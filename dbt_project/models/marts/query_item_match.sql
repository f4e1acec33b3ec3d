{{ config(location=env_var('SHOPRANK_MARTS_EXPORT_DIR') ~ '/query_item_match.parquet') }}
-- One row per search impression: the query, the item's title and their word overlap (share of the query's words
-- found in the title, case-insensitive). A request-time feature: it uses only the request and the catalogue, so it
-- is point-in-time by construction. Joins training_examples on impression_id.
with

impressions as (

    select event_id, request_id, user_id, item_id, query, item_title, event_date
    from {{ ref('int_events') }}
    where event_type = 'impression' and surface = 'search' and query is not null

),

final as (

    select
        event_id as impression_id,
        request_id,
        user_id,
        item_id,
        query,
        item_title,
        cast(
            coalesce(
                len(list_intersect(
                    list_distinct(string_split(lower(query), ' ')),
                    string_split(lower(coalesce(item_title, '')), ' ')
                )) / nullif(len(list_distinct(string_split(lower(query), ' '))), 0),
                0
            ) as double
        ) as query_title_match,
        event_date as dt

    from impressions

)

select * from final
order by dt, request_id, impression_id
