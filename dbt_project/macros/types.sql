{#- The column types the models cast to, spelled per warehouse. DuckDB and PostgreSQL share these names (so their
    SQL is what it always was); Spark SQL has none of them: double, string and timestamp (an instant, shown in the
    session's time zone, which the spark target pins to UTC) are its equivalents. -#}

{% macro float8() %}{{ return(adapter.dispatch('float8')()) }}{% endmacro %}
{% macro default__float8() %}{{ return('float8') }}{% endmacro %}
{% macro spark__float8() %}{{ return('double') }}{% endmacro %}

{% macro varchar() %}{{ return(adapter.dispatch('varchar')()) }}{% endmacro %}
{% macro default__varchar() %}{{ return('varchar') }}{% endmacro %}
{% macro spark__varchar() %}{{ return('string') }}{% endmacro %}

{% macro timestamptz() %}{{ return(adapter.dispatch('timestamptz')()) }}{% endmacro %}
{% macro default__timestamptz() %}{{ return('timestamptz') }}{% endmacro %}
{% macro spark__timestamptz() %}{{ return('timestamp') }}{% endmacro %}
