{#- The ranking service's logs (serving/request_log.py: <SHOPRANK_SERVING_LOGS_DIR>/<table>/dt=*/part-*.parquet),
    read in place by DuckDB. A home whose service never logged has no file, and read_parquet of an empty glob is an
    error: the relation is then an empty select with ``empty_columns`` (checked when the model runs; also when
    SHOPRANK_SERVING_LOGS_DIR is not set, e.g. a dbt started outside settings.runtime_env). -#}
{% macro serving_log(table, empty_columns) %}
    {%- set logs_dir = env_var('SHOPRANK_SERVING_LOGS_DIR', '') -%}
    {%- set files = logs_dir ~ '/' ~ table ~ '/dt=*/*.parquet' -%}
    {%- set found = namespace(any=false) -%}
    {%- if execute and logs_dir -%}
        {%- set found.any = run_query("select count(*) > 0 from glob('" ~ files ~ "')").columns[0].values()[0] -%}
    {%- endif -%}
    {%- if found.any -%}
        read_parquet('{{ files }}', union_by_name = true, hive_partitioning = false)
    {%- else -%}
        (select {{ empty_columns }} limit 0)
    {%- endif -%}
{% endmacro %}
