{% macro n_categories() %}
    {#- how many user_cat_share_NN columns the marts carry (var n_categories, env SHOPRANK_N_CATEGORIES) -#}
    {{- return(var('n_categories') | int) -}}
{% endmacro %}


{% macro cat_suffix(category) %}
    {{- return('%02d' | format(category | int)) -}}
{% endmacro %}


{% macro run_date_value() %}
    {#- The run's day, 'YYYY-MM-DD', or none (then: the latest event date). Var run_date when given (`--vars`, as the
        Airflow tasks and a shell may pass it), else env SHOPRANK_RUN_DATE, which `shoprank build-warehouse` sets
        (warehouse/build.py: dbt_env). The env var is read only at execution: a var given on the command line is part
        of dbt's parse state, so a new day's `--vars` made every daily run re-parse the whole project (~17 s at 10M
        events under load); a day in the environment leaves the cached parse (partial_parse.msgpack) valid. -#}
    {%- set value = var('run_date', none) -%}
    {%- if (value is none or (value | string | trim) in ('', 'None', 'null')) and execute -%}
        {%- set value = env_var('SHOPRANK_RUN_DATE', '') -%}
    {%- endif -%}
    {%- if value is none or (value | string | trim) in ('', 'None', 'null') -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return((value | string | trim)[:10]) -}}
{% endmacro %}


{% macro run_date_literal() %}
    {#- the run's day as a SQL date literal, or none when no run day is given (run_date_value) -#}
    {%- set value = run_date_value() -%}
    {%- if value is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return("date '" ~ value ~ "'") -}}
{% endmacro %}


{% macro smoothed_rate(successes, trials, prior, weight) %}
    {#- Bayesian (beta prior) smoothing: (successes + weight * prior) / (trials + weight) -#}
    ((cast({{ successes }} as {{ float8() }}) + {{ weight }} * {{ prior }}) / (cast({{ trials }} as {{ float8() }}) + {{ weight }}))
{%- endmacro %}
