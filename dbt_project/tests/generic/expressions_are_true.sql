{% test expressions_are_true(model, expressions) %}
{#- every row satisfies each boolean SQL expression (nulls count as false, as in expression_is_true), in one scan
    of the model (one test node instead of one per expression, value range or accepted value list: dbt's per-node
    cost is most of such a test's time); fails with one row per expression that some rows break, naming it and how
    many rows. A column that may be null says so (`x is null or x >= 0`), as values_between and accepted_values let
    nulls pass. -#}

with

counted as (

    select
        {%- for expression in expressions %}
        sum(case when coalesce(({{ expression }}), false) then 0 else 1 end) as failing_rows_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}

    from {{ model }}

)

{% for expression in expressions -%}
select
    '{{ expression | replace("'", '"') | replace('\n', ' ') }}' as expression,
    failing_rows_{{ loop.index }} as failing_rows
from counted where failing_rows_{{ loop.index }} > 0
{% if not loop.last %}union all
{% endif -%}
{%- endfor %}

{% endtest %}
