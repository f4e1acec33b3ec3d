{% test not_null_columns(model, columns) %}
{#- every listed column of the model free of nulls, in one scan (one test node instead of one per column: dbt's
    per-node cost is most of a small not_null test's time); fails with one row per column that holds nulls, naming
    the column and how many rows -#}

with

counted as (

    select
        {%- for column in columns %}
        count(*) - count({{ column }}) as null_rows_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}

    from {{ model }}

)

{% for column in columns -%}
select '{{ column }}' as column_name, null_rows_{{ loop.index }} as null_rows from counted where null_rows_{{ loop.index }} > 0
{% if not loop.last %}union all
{% endif -%}
{%- endfor %}

{% endtest %}
