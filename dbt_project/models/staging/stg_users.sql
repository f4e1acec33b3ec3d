with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        cast(user_id as {{ varchar() }}) as user_id,
        cast(signup_ts as {{ timestamptz() }}) as signup_ts,
        cast(region as {{ varchar() }}) as region,
        cast(age_band as {{ varchar() }}) as age_band,
        cast(dt as date) as dt

    from source

),

deduplicated as (

    {{ latest_row('renamed', 'user_id', 'dt desc, signup_ts desc') }}

)

select * from deduplicated
