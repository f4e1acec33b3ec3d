with

source as (

    select * from {{ source('raw', 'inventory') }}

),

renamed as (

    select
        cast(item_id as {{ varchar() }}) as item_id,
        cast(snapshot_ts as {{ timestamptz() }}) as snapshot_ts,
        cast(stock_units as bigint) as stock_units,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    {{ latest_row('renamed', 'item_id, snapshot_ts', 'dt desc') }}

)

select * from deduplicated
