with

source as (

    select * from {{ source('raw', 'sellers') }}

),

renamed as (

    select
        cast(seller_id as {{ varchar() }}) as seller_id,
        cast(created_ts as {{ timestamptz() }}) as created_ts,
        cast(region as {{ varchar() }}) as region,
        cast(tier as {{ varchar() }}) as tier,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    {{ latest_row('renamed', 'seller_id', 'dt desc, created_ts desc') }}

)

select * from deduplicated
