with

source as (

    select * from {{ source('raw', 'sellers') }}

),

renamed as (

    select
        cast(seller_id as varchar) as seller_id,
        cast(created_ts as timestamptz) as created_ts,
        cast(region as varchar) as region,
        cast(tier as varchar) as tier,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    select *
    from renamed
    qualify row_number() over (partition by seller_id order by dt desc, created_ts desc) = 1

)

select * from deduplicated
