{{ config(
    stored_days_final=true, post_hook="{{ export_mart('dt, request_id, impression_id', by_day='dt') }}"
) }}
-- One row per search impression: the query, the item's title and their word overlap (share of the query's words
-- found in the title, case-insensitive). A request-time feature: it uses only the request and the catalogue, so it
-- is point-in-time by construction. Joins training_examples on impression_id. Incremental by day: a stored day is
-- final (its rows come from that day's impressions only), so a run for day D writes day D alone (after_newest).
with

impressions as (

    select event_id, request_id, user_id, item_id, query, item_title, event_date
    from {{ ref('int_events') }}
    where event_type = 'impression' and surface = 'search' and query is not null
        and {{ partition_filter('event_date', after_newest=true) }}

),

final as (

    select
        event_id as impression_id,
        request_id,
        user_id,
        item_id,
        query,
        item_title,
        cast({{ word_overlap('query', 'item_title') }} as {{ float8() }}) as query_title_match,
        event_date as dt

    from impressions

)

select * from final
