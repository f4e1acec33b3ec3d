{% macro n_categories() %}
    {#- how many user_cat_share_NN columns the marts carry (var n_categories, env SHOPRANK_N_CATEGORIES) -#}
    {{- return(var('n_categories') | int) -}}
{% endmacro %}


{% macro cat_suffix(category) %}
    {{- return('%02d' | format(category | int)) -}}
{% endmacro %}


{% macro run_date_literal() %}
    {#- the run's day as a SQL date literal, or none when var run_date is unset (then: the latest event date) -#}
    {%- set value = var('run_date', none) -%}
    {%- if value is none or (value | string | trim) in ('', 'None', 'null') -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return("date '" ~ (value | string | trim) ~ "'") -}}
{% endmacro %}


{% macro smoothed_rate(successes, trials, prior, weight) %}
    {#- Bayesian (beta prior) smoothing: (successes + weight * prior) / (trials + weight) -#}
    ((cast({{ successes }} as {{ float8() }}) + {{ weight }} * {{ prior }}) / (cast({{ trials }} as {{ float8() }}) + {{ weight }}))
{%- endmacro %}
