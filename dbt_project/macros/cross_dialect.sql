{#- The few SQL constructs DuckDB and PostgreSQL spell differently, behind adapter.dispatch. The duckdb__ forms
    are the ones the models used before the PostgreSQL target existed (DuckDB output stays byte for byte the same);
    the default__ forms are PostgreSQL's (DISTINCT ON, unnest and string_to_array are not standard SQL: another
    adapter may need its own). The spark__ forms are Spark SQL's (the `spark` target; its session time zone is UTC,
    so a timestamp's date is its UTC date); asof_left_join's default form is standard SQL, which Spark runs as is.
    Column types have their own macros (types.sql). -#}

{% macro add_days(day, days) %}
    {#- the day `days` (an integer constant) days after the date `day` (negative: before) -#}
    {{- return(adapter.dispatch('add_days')(day, days)) -}}
{% endmacro %}

{% macro duckdb__add_days(day, days) -%}
    ({{ day }} {{ '-' if days | int < 0 else '+' }} interval {{ (days | int) | abs }} day)
{%- endmacro %}

{% macro default__add_days(day, days) -%}
    (cast({{ day }} as date) {{ '-' if days | int < 0 else '+' }} {{ (days | int) | abs }})
{%- endmacro %}

{% macro spark__add_days(day, days) -%}
    date_add({{ day }}, {{ days | int }})
{%- endmacro %}


{% macro days_between(first_day, second_day) %}
    {#- whole days from first_day to second_day (dates) -#}
    {{- return(adapter.dispatch('days_between')(first_day, second_day)) -}}
{% endmacro %}

{% macro duckdb__days_between(first_day, second_day) -%}
    date_diff('day', {{ first_day }}, {{ second_day }})
{%- endmacro %}

{% macro default__days_between(first_day, second_day) -%}
    ({{ second_day }} - {{ first_day }})
{%- endmacro %}

{% macro spark__days_between(first_day, second_day) -%}
    datediff({{ second_day }}, {{ first_day }})
{%- endmacro %}


{% macro seconds_between(first_ts, second_ts) %}
    {#- second boundaries crossed from first_ts to second_ts (DuckDB's date_diff('second', ...)) -#}
    {{- return(adapter.dispatch('seconds_between')(first_ts, second_ts)) -}}
{% endmacro %}

{% macro duckdb__seconds_between(first_ts, second_ts) -%}
    date_diff('second', {{ first_ts }}, {{ second_ts }})
{%- endmacro %}

{% macro default__seconds_between(first_ts, second_ts) -%}
    cast(floor(extract(epoch from {{ second_ts }})) - floor(extract(epoch from {{ first_ts }})) as bigint)
{%- endmacro %}

{% macro spark__seconds_between(first_ts, second_ts) -%}
    (unix_seconds({{ second_ts }}) - unix_seconds({{ first_ts }}))
{%- endmacro %}


{% macro utc_date(ts) %}
    {#- the UTC calendar date of a timestamptz, whatever the session's time zone -#}
    {{- return(adapter.dispatch('utc_date')(ts)) -}}
{% endmacro %}

{% macro duckdb__utc_date(ts) -%}
    cast(timezone('UTC', {{ ts }}) as date)
{%- endmacro %}

{% macro default__utc_date(ts) -%}
    cast({{ ts }} at time zone 'UTC' as date)
{%- endmacro %}

{% macro spark__utc_date(ts) -%}
    cast({{ ts }} as date)
{%- endmacro %}


{% macro utc_midnight(day) %}
    {#- day 00:00 UTC as a timestamptz -#}
    {{- return(adapter.dispatch('utc_midnight')(day)) -}}
{%- endmacro %}

{% macro default__utc_midnight(day) -%}
    (cast({{ day }} as timestamp) at time zone 'UTC')
{%- endmacro %}

{% macro spark__utc_midnight(day) -%}
    to_utc_timestamp(cast({{ day }} as timestamp), 'UTC')
{%- endmacro %}


{% macro day_series(bounds, first_day, last_day, column) %}
    {#- select: one row per day from first_day to last_day (date expressions over the one-row relation `bounds`),
        as a date column named `column` -#}
    {{- return(adapter.dispatch('day_series')(bounds, first_day, last_day, column)) -}}
{% endmacro %}

{% macro duckdb__day_series(bounds, first_day, last_day, column) -%}
    select cast(generate_series as date) as {{ column }}
    from {{ bounds }},
        generate_series({{ first_day }}, {{ last_day }}, interval 1 day)
{%- endmacro %}

{% macro default__day_series(bounds, first_day, last_day, column) -%}
    select cast(series.series_day as date) as {{ column }}
    from {{ bounds }}
    cross join lateral generate_series(
        cast({{ first_day }} as timestamp), cast({{ last_day }} as timestamp), interval '1 day'
    ) as series(series_day)
{%- endmacro %}

{% macro spark__day_series(bounds, first_day, last_day, column) -%}
    select explode(sequence(
        cast({{ first_day }} as date), cast({{ last_day }} as date), interval 1 day
    )) as {{ column }}
    from {{ bounds }}
{%- endmacro %}


{% macro latest_row(relation, partition_by, order_by) %}
    {#- `select *` of `relation` (a CTE), one row per partition_by: the first by order_by -#}
    {{- return(adapter.dispatch('latest_row')(relation, partition_by, order_by)) -}}
{% endmacro %}

{% macro duckdb__latest_row(relation, partition_by, order_by) -%}
    select *
    from {{ relation }}
    qualify row_number() over (partition by {{ partition_by }} order by {{ order_by }}) = 1
{%- endmacro %}

{% macro default__latest_row(relation, partition_by, order_by) -%}
    select distinct on ({{ partition_by }}) *
    from {{ relation }}
    order by {{ partition_by }}, {{ order_by }}
{%- endmacro %}

{% macro spark__latest_row(relation, partition_by, order_by) -%}
    {#- no QUALIFY nor DISTINCT ON: rank the rows as one struct beside the rank, keep the first, unpack it -#}
    select latest_row.* from (
        select
            struct(*) as latest_row,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as latest_row_rank
        from {{ relation }}
    ) as ranked
    where latest_row_rank = 1
{%- endmacro %}


{% macro asof_left_join(left, right, key, left_ts, right_ts, columns) %}
    {#- FROM clause: `left` and, per row, `columns` of the `right` row with the same `key` and the latest
        right_ts <= left_ts (null when none). `select left.*, right.<column>` from it. -#}
    {{- return(adapter.dispatch('asof_left_join')(left, right, key, left_ts, right_ts, columns)) -}}
{% endmacro %}

{% macro duckdb__asof_left_join(left, right, key, left_ts, right_ts, columns) -%}
    {{ left }}
    asof left join {{ right }}
        on {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {{ left }}.{{ left_ts }} >= {{ right }}.{{ right_ts }}
{%- endmacro %}

{% macro default__asof_left_join(left, right, key, left_ts, right_ts, columns) -%}
    {{ left }}
    left join (
        -- the latest right_ts at or before each left row's, then that row's columns
        select
            matched.{{ key }},
            matched.{{ left_ts }},
            {%- for column in columns %}
            {{ right }}.{{ column }},
            {%- endfor %}
            matched.{{ right_ts }}
        from (
            select {{ left }}.{{ key }}, {{ left }}.{{ left_ts }}, max({{ right }}.{{ right_ts }}) as {{ right_ts }}
            from {{ left }}
            inner join {{ right }}
                on {{ left }}.{{ key }} = {{ right }}.{{ key }}
                and {{ left }}.{{ left_ts }} >= {{ right }}.{{ right_ts }}
            group by {{ left }}.{{ key }}, {{ left }}.{{ left_ts }}
        ) as matched
        inner join {{ right }}
            on matched.{{ key }} = {{ right }}.{{ key }}
            and matched.{{ right_ts }} = {{ right }}.{{ right_ts }}
    ) as {{ right }}
        on {{ left }}.{{ key }} = {{ right }}.{{ key }}
        and {{ left }}.{{ left_ts }} = {{ right }}.{{ left_ts }}
{%- endmacro %}


{% macro word_overlap(query, text) %}
    {#- share of the query's distinct space-separated words found in text (case-insensitive); 0 without words -#}
    {{- return(adapter.dispatch('word_overlap')(query, text)) -}}
{% endmacro %}

{% macro duckdb__word_overlap(query, text) -%}
    coalesce(
        len(list_intersect(
            list_distinct(string_split(lower({{ query }}), ' ')),
            string_split(lower(coalesce({{ text }}, '')), ' ')
        )) / nullif(len(list_distinct(string_split(lower({{ query }}), ' '))), 0),
        0
    )
{%- endmacro %}

{% macro default__word_overlap(query, text) -%}
    coalesce(
        (
            select cast(count(distinct word) filter (
                where word = any(string_to_array(lower(coalesce({{ text }}, '')), ' '))
            ) as float8) / nullif(count(distinct word), 0)
            from unnest(string_to_array(lower({{ query }}), ' ')) as words(word)
        ),
        0
    )
{%- endmacro %}

{% macro spark__word_overlap(query, text) -%}
    coalesce(
        size(array_intersect(
            array_distinct(split(lower({{ query }}), ' ')),
            split(lower(coalesce({{ text }}, '')), ' ')
        )) / nullif(size(array_distinct(split(lower({{ query }}), ' '))), 0),
        0
    )
{%- endmacro %}
