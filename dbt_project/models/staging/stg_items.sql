with

source as (

    select * from {{ source('raw', 'items') }}

),

renamed as (

    select
        cast(item_id as {{ varchar() }}) as item_id,
        cast(item_type as {{ varchar() }}) as item_type,
        cast(case cast(item_type as {{ varchar() }})
            when 'product' then 0
            when 'video' then 1
            when 'live' then 2
        end as bigint) as item_type_code,
        cast(seller_id as {{ varchar() }}) as seller_id,
        cast(category_id as bigint) as category_id,
        cast(price as {{ float8() }}) as price,
        cast(title as {{ varchar() }}) as title,
        cast(created_ts as {{ timestamptz() }}) as created_ts,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    {{ latest_row('renamed', 'item_id', 'dt desc, created_ts desc') }}

)

select * from deduplicated
