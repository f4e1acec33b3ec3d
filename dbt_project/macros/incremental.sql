{#- Incremental marts: which day partitions a run rewrites, and the parquet export (the build area the gates judge). -#}

{% macro partition_strategy() %}
    {#- How an incremental model rewrites its day partitions: delete+insert on the key (config unique_key); Spark's
        parquet tables have no DELETE, so there the table is partitioned by the key (partition_key) and a run
        overwrites the partitions it writes (dynamic partition overwrite): the same rows either way. -#}
    {{- return('insert_overwrite' if target.type == 'spark' else 'delete+insert') -}}
{% endmacro %}


{% macro partition_key(column) %}
    {#- config partition_by: the day key on Spark (see partition_strategy), none elsewhere -#}
    {{- return(column if target.type == 'spark' else none) -}}
{% endmacro %}


{% macro run_day() %}
    {#- The run's day as a python date: run_date_value (var run_date, env SHOPRANK_RUN_DATE), else the latest event
        date (int_day_spine.run_date). -#}
    {%- set value = run_date_value() -%}
    {%- if value is none -%}
        {%- set value = run_query('select max(run_date) from ' ~ ref('int_day_spine')).columns[0].values()[0] -%}
    {%- endif -%}
    {{- return(modules.datetime.date.fromisoformat((value | string | trim)[:10])) -}}
{% endmacro %}


{% macro partition_start(offset_days=0, after_newest=false) %}
    {#- The first partition an incremental run rewrites, as a SQL date literal; none on a full build.

        The marts are delete+insert keyed on their partition column (config unique_key): a run for day D writes the
        partitions from D + offset_days on, up to the newest one it computes, and leaves older ones alone, so a
        backfill of an earlier day rewrites only the partitions that day owns. Feature snapshots use offset 0: the
        run owns D (the stock snapshot taken at D 00:00 lands with day D's data) and D + 1 (the serving snapshot).
        Impression marts use -1: an outcome after midnight lands a day after its impression.
        When the table's newest partition is older than that (runs were skipped), the run starts there instead and
        fills the gap, so running days one at a time gives the same rows as one run of the last day.
        after_newest: the table's rows of a day depend only on that day's raw partition (int_*_daily,
        query_item_match), so a stored day is final and the run starts at min(D + offset_days, newest + 1 day).
        A raw partition re-landed since the last build (relanded_start, day R) moves the start to R + offset_days
        at most: the run then rewrites what a backfill of R would, and every later day. -#}
    {%- set spine = ref('int_day_spine') -%}  {#- a parse-time dependency: run_day() queries it -#}
    {%- if not is_incremental() -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = run_query(
        'select max(' ~ config.get('unique_key') ~ ') from ' ~ this
    ).columns[0].values()[0] -%}
    {%- if newest is none -%}
        {{- return(none) -}}  {#- an empty table: build everything -#}
    {%- endif -%}
    {%- set newest = modules.datetime.date.fromisoformat((newest | string)[:10]) -%}
    {%- set offset = modules.datetime.timedelta(days=offset_days | int) -%}
    {%- set starts = [run_day() + offset, newest + modules.datetime.timedelta(days=1) if after_newest else newest] -%}
    {%- set relanded = relanded_start() -%}
    {%- if relanded is not none -%}
        {%- do starts.append(relanded + offset) -%}
    {%- endif -%}
    {{- return("date '" ~ (starts | min).isoformat() ~ "'") -}}
{% endmacro %}


{% macro relanded_start() %}
    {#- The earliest day whose raw partition (of any raw table) changed or appeared since the last build that read
        the raw data (a python date, or none): env SHOPRANK_RELANDED_FROM, which `shoprank build-warehouse` sets from
        the raw files' sizes and mtimes against the list it kept after its last successful build
        (warehouse/build.py: relanded_from). Read only at execution, like the run's day. Without it (dbt run by
        hand, the per-model Airflow tasks) a corrected older partition needs a backfill of its day or --full-refresh. -#}
    {%- set value = env_var('SHOPRANK_RELANDED_FROM', '') if execute else '' -%}
    {%- if (value | trim) == '' -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(modules.datetime.date.fromisoformat((value | trim)[:10])) -}}
{% endmacro %}


{% macro newest_stored(name, column) %}
    {#- max(column) of the model `name`'s table, as a python date; none when the table is missing or empty -#}
    {%- set node = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', name) | first -%}
    {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
    {%- if relation is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = run_query('select max(' ~ column ~ ') from ' ~ relation).columns[0].values()[0] -%}
    {{- return(none if newest is none else modules.datetime.date.fromisoformat((newest | string)[:10])) -}}
{% endmacro %}


{% macro partition_filter(column, offset_days=0, after_newest=false) %}
    {#- A predicate keeping `column` (a date) to the partitions this run rewrites; `true` on a full build. -#}
    {%- set start = partition_start(offset_days, after_newest) -%}
    {{- return(column ~ ' >= ' ~ start if start else 'true') -}}
{% endmacro %}


{% macro run_start() %}
    {#- The first day this run rewrites in any day-partitioned incremental model, as a python date; none when the
        run builds all history (no run day given, --full-refresh, or such a model's table missing or empty).

        Each model rewrites from min(run's day + offset, its newest partition, a re-landed raw day + offset)
        (partition_start); a model whose stored days are final (config stored_days_final: its rows of a day come
        from that day's raw partition only, partition_start(after_newest=true)) from its newest partition + 1 day.
        The minimum over the models bounds what a run reads: the day spine starts here (int_day_spine), the
        day-partitioned exports write the days from here on (export_mart_days) and the marts' data tests check the
        partitions from here on (get_where_subquery), so the daily run reads and rewrites a few days, whatever the
        history's length (stg_events has its own start, events_start). The impression marts' late outcomes: on
        DuckDB training_examples rewrites of the day before its first whole day only the impressions an outcome in
        the new days labels (relabel_key), so the spine starts that day earlier only when there is such an outcome
        (relabels_day_before); PostgreSQL and Spark rewrite that day whole, so there it always starts a day earlier.
        Called while int_day_spine compiles, after stg_events (itself one of these models, then holding at least the
        days it read) and before any other model of this run. -#}
    {%- if not execute or flags.FULL_REFRESH or run_date_literal() is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {%- set run = modules.datetime.date.fromisoformat(run_date_value()) -%}
    {%- set state = namespace(start=run if target.type == 'duckdb' else run - one_day, full=false, relabelled=[]) -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
            and node.config.materialized == 'incremental' and node.config.unique_key in ('dt', 'event_date') -%}
        {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- set newest = none if relation is none else run_query(
            'select max(' ~ node.config.unique_key ~ ') from ' ~ relation
        ).columns[0].values()[0] -%}
        {%- if newest is none -%}
            {%- set state.full = true -%}
        {%- else -%}
            {%- set newest = modules.datetime.date.fromisoformat((newest | string)[:10]) -%}
            {%- set first = newest + one_day if node.config.get('stored_days_final') else newest -%}
            {%- set state.start = [state.start, first] | min -%}
            {%- if node.config.get('relabel_key') -%}
                {%- do state.relabelled.append([run, newest + one_day] | min) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set relanded = relanded_start() -%}
    {%- if relanded is not none -%}
        {%- set state.start = [state.start, relanded - one_day] | min -%}
    {%- endif -%}
    {%- for first_whole_day in state.relabelled if first_whole_day <= state.start -%}
        {%- if relabels_day_before(first_whole_day) -%}
            {%- set state.start = [state.start, first_whole_day - one_day] | min -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return(none if state.full else state.start) -}}
{% endmacro %}


{% macro relabels_day_before(first_day) %}
    {#- True when stg_events holds, from first_day (a python date) on, a click, add-to-cart or purchase of a
        (request, item) shown on the day before: an impression of that day training_examples relabels (a request
        across midnight), so that day's partition, its export and its tests belong to the run. A superset of what
        training_examples relabels (its events also stop at the run's day): an extra day costs an export, a missed
        one would leave a stale file. -#}
    {%- set events = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'stg_events') | first -%}
    {%- set relation = adapter.get_relation(database=events.database, schema=events.schema, identifier=events.alias) -%}
    {%- if relation is none -%}
        {{- return(true) -}}
    {%- endif -%}
    {#- a semi-join of the new days' outcomes to the day before's impressions (0.1 s at 10M events), not an intersect,
        which hashes that whole day of impressions (0.8 s): every model of the run waits on this query (int_day_spine).
        stg_events' tests, which run before, keep request_id and item_id not null. -#}
    {%- set found = run_query(
        "select count(*) from (select 1 from " ~ relation ~ " as outcome"
        ~ " where outcome.dt >= date '" ~ first_day.isoformat() ~ "'"
        ~ " and outcome.event_type in ('click', 'add_to_cart', 'purchase')"
        ~ " and exists (select 1 from " ~ relation ~ " as shown"
        ~ " where shown.dt = date '" ~ (first_day - modules.datetime.timedelta(days=1)).isoformat() ~ "'"
        ~ " and shown.event_type = 'impression' and shown.request_id = outcome.request_id"
        ~ " and shown.item_id = outcome.item_id) limit 1) as relabelled"
    ).columns[0].values()[0] -%}
    {{- return(found > 0) -}}
{% endmacro %}


{% macro events_start_day() %}
    {#- The first raw event day this run reads into stg_events, as a python date (none: all): min(the run's day,
        stg_events' newest stored dt + 1 day, relanded_start). A stored day of stg_events is final (its rows come
        from its own raw partition only), so the daily run reads one raw partition, D's; an id re-landed in D that
        the stored day before already holds is dropped there (stg_events: an anti-join against that one stored
        day). Spark (whose insert overwrite cannot read the table it writes) reads the day before again instead and
        de-duplicates the two. The raw gate keeps every event inside its partition's day, so the partition dt is
        the event's date. stg_events is a table incremental by dt, so the retrieval marts' 7-day windows read its
        stored days. -#}
    {%- if not execute or flags.FULL_REFRESH or run_date_literal() is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = newest_stored('stg_events', 'dt') -%}
    {%- if newest is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set run = modules.datetime.date.fromisoformat(run_date_value()) -%}
    {%- set starts = [run, newest + modules.datetime.timedelta(days=1)] -%}
    {%- if target.type == 'spark' -%}
        {%- do starts.append(run - modules.datetime.timedelta(days=1)) -%}
    {%- endif -%}
    {%- set relanded = relanded_start() -%}
    {%- if relanded is not none -%}
        {%- do starts.append(relanded) -%}
    {%- endif -%}
    {{- return(starts | min) -}}
{% endmacro %}


{% macro events_start() %}
    {#- events_start_day as a SQL date literal (none: all raw event partitions) -#}
    {%- set start = events_start_day() -%}
    {{- return(none if start is none else "date '" ~ start.isoformat() ~ "'") -}}
{% endmacro %}


{% macro raw_partitions(relation, table, first_day) %}
    {#- The raw source `relation` of `table`, only the partitions from first_day (a SQL date literal) on. Callers
        also filter on dt: that is all PostgreSQL needs (raw.<table> is a table with a dt column). -#}
    {{- return(adapter.dispatch('raw_partitions')(relation, table, first_day)) -}}
{% endmacro %}


{% macro default__raw_partitions(relation, table, first_day) %}
    {{- return(relation) -}}
{% endmacro %}


{% macro duckdb__raw_partitions(relation, table, first_day) %}
    {#- read_parquet over the source's glob opens every file whatever the query filters (union_by_name reads each
        file's schema), so list the files with DuckDB's glob(), which opens none, and read only the window's. -#}
    {%- if not execute -%}
        {{- return(relation) -}}
    {%- endif -%}
    {%- set pattern = env_var('SHOPRANK_RAW_DIR') ~ '/' ~ table ~ '/*/*.parquet' -%}
    {%- set files = run_query(
        "select file from glob('" ~ (pattern | replace("'", "''")) ~ "') "
        ~ "where try_cast(regexp_extract(file, 'dt=([0-9-]+)', 1) as date) >= " ~ first_day ~ " order by file"
    ).columns[0].values() -%}
    {%- if files | length == 0 -%}
        {{- return(relation) -}}  {#- nothing in the window: the whole source, which the dt filter empties -#}
    {%- endif -%}
    {%- set quoted = [] -%}
    {%- for file in files -%}
        {%- do quoted.append("'" ~ (file | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {{- return('read_parquet([' ~ quoted | join(', ') ~ '], hive_partitioning = true, union_by_name = true)') -}}
{% endmacro %}


{% macro first_run_partition(offset_days) %}
    {#- The first partition this run rewrote in a model with run_partition_offset `offset_days`: the day spine's
        first day (run_start) + the offset, a python date; none when the spine is empty. Read at execution, after the
        spine is built (a data test's where, a day export). -#}
    {%- set spine = graph.nodes.values() | selectattr('name', 'equalto', 'int_day_spine') | first -%}
    {%- set spine_relation = api.Relation.create(database=spine.database, schema=spine.schema, identifier=spine.alias) -%}
    {%- set first_day = run_query('select min(feature_date) from ' ~ spine_relation).columns[0].values()[0] -%}
    {{- return(none if first_day is none else (
        modules.datetime.date.fromisoformat((first_day | string)[:10]) + modules.datetime.timedelta(days=offset_days)
    )) -}}
{% endmacro %}


{% macro run_partition_offset(node_config=none) %}
    {#- A model's config run_partition_offset (default 0): its run rewrites the partitions from the day spine's
        first day + that many days on, so its day exports and its daily data tests start there. 1 for the models
        whose run writes the serving snapshot (run's day + 1) alone: the retrieval marts, and user_category_features
        (feature day D is final after D - 1's run). node_config: a graph node's config (a data test's model); the
        model being run by default. -#}
    {%- set node_config = node_config if node_config is not none else config -%}
    {{- return(node_config.get('run_partition_offset', 0) | int) -}}
{% endmacro %}


{% macro get_where_subquery(relation) -%}
    {#- dbt's `where` test config, with two placeholders, so the daily run's tests read a few days rather than
        whole tables (every day on a full build):
        __run_partitions__: the partitions this run rewrote, from the day spine's first day (run_start) + the tested
        model's run_partition_offset on, in its partition column (config unique_key);
        __run_days__: the same days of a model partitioned by the raw day dt (stg_events, tested before the spine
        is rebuilt). -#}
    {%- set where = config.get('where', '') -%}
    {%- if execute and where and '__run_partitions__' in where -%}
        {%- set column = namespace(name='dt', offset=0) -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.alias == relation.identifier
                and node.config.unique_key -%}
            {%- set column.name = node.config.unique_key -%}
            {%- set column.offset = run_partition_offset(node.config) -%}
        {%- endfor -%}
        {#- a literal, not a subquery: DuckDB then skips the older row groups by their min/max -#}
        {%- set first_day = first_run_partition(column.offset) -%}
        {%- set where = where | replace(
            '__run_partitions__',
            column.name ~ " >= date '" ~ (first_day | string)[:10] ~ "'" if first_day is not none else 'true'
        ) -%}
    {%- endif -%}
    {%- if execute and where and '__run_days__' in where -%}
        {%- set first_day = events_start() -%}
        {%- set where = where | replace('__run_days__', 'dt >= ' ~ first_day if first_day else 'true') -%}
    {%- endif -%}
    {%- if where -%}
        {{- return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -}}
    {%- endif -%}
    {{- return(relation) -}}
{%- endmacro %}


{% macro export_mart(order_by, latest_only=none, by_day=none) %}
    {#- Post-hook: write the whole mart (or only its newest `latest_only` partition) to
        $SHOPRANK_MARTS_BUILD_DIR/<model>.parquet, sorted (a total order: the bytes are reproducible): the build
        area the gates judge; the `publish` step copies it to the published marts after the last gate.
        by_day (a date column, the model's partition key): one file per day instead,
        <model>/dt=YYYY-MM-DD.parquet (shoprank/mart_files.py), and a run writes only the days it may have rewritten
        (from the day spine's first day, run_start, on) plus any day without its file: the large impression marts'
        export then grows with the day, not with the history. warehouse/build.py makes the folder before the run and
        deletes, after it, the files of days no longer in the table. A model whose run starts later than the spine
        (config run_partition_offset, e.g. 1) writes its files from the spine's first day + that offset on. -#}
    {{- return(adapter.dispatch('export_mart')(order_by, latest_only, by_day)) -}}
{% endmacro %}


{% macro duckdb__export_mart(order_by, latest_only, by_day) %}
    {%- if by_day -%}
        {%- do export_mart_days(order_by, by_day) -%}
    {%- else %}
    copy (
        select * from {{ this }}
        {%- if latest_only %}
        where {{ latest_only }} = (select max({{ latest_only }}) from {{ this }})
        {%- endif %}
        order by {{ order_by }}
    ) to '{{ env_var("SHOPRANK_MARTS_BUILD_DIR") }}/{{ this.identifier }}.parquet' (format parquet)
    {%- endif %}
{% endmacro %}


{% macro export_mart_days(order_by, by_day) %}
    {#- DuckDB: one COPY per day this run may have rewritten (see export_mart), each sorted by order_by: a day's
        file holds the rows, in the order, the whole mart's file held for that day. Runs the copies itself (the hook's
        own SQL is then empty). -#}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set folder = env_var('SHOPRANK_MARTS_BUILD_DIR') ~ '/' ~ this.identifier -%}
    {%- set first_day = first_run_partition(run_partition_offset()) -%}
    {%- set first_day = none if first_day is none else first_day.isoformat() -%}
    {%- set existing = [] -%}
    {%- for file in run_query(
            "select file from glob('" ~ (folder | replace("'", "''")) ~ "/dt=*.parquet')"
        ).columns[0].values() -%}
        {%- do existing.append((file | string).split('dt=')[-1][:10]) -%}
    {%- endfor -%}
    {%- set days = run_query(
        'select distinct ' ~ by_day ~ ' from ' ~ this ~ ' order by 1'
    ).columns[0].values() -%}
    {%- for value in days -%}
        {%- set day = (value | string)[:10] -%}
        {%- if first_day is none or day >= first_day or day not in existing -%}
            {%- do run_query(
                "copy (select * from " ~ this ~ " where " ~ by_day ~ " = date '" ~ day ~ "' order by " ~ order_by
                ~ ") to '" ~ (folder | replace("'", "''")) ~ "/dt=" ~ day ~ ".parquet' (format parquet)"
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return('') -}}
{% endmacro %}


{% macro postgres__export_mart(order_by, latest_only, by_day) %}
    {#- PostgreSQL writes no parquet: record the export's query (same rows, same order as DuckDB's) in
        <schema>._mart_exports; warehouse/pg_export.py streams each recorded query to the same build-area file after
        the build, so Feast, training and serving read the same files on either target. -#}
    {%- set query -%}
        select * from {{ this }}
        {%- if latest_only %} where {{ latest_only }} = (select max({{ latest_only }}) from {{ this }}){% endif %}
        order by {{ order_by }}
    {%- endset -%}
    insert into {{ this.schema }}._mart_exports (mart, query) values ('{{ this.identifier }}', '{{ query | replace("'", "''") }}')
    on conflict (mart) do update set query = excluded.query
{% endmacro %}


{% macro spark__export_mart(order_by, latest_only, by_day) %}
    {#- Spark writes the export itself, as part files of one directory (same rows, same order as DuckDB's copy:
        the sort's range partitions are numbered in order); warehouse/spark.py concatenates them, in name order,
        into the build-area file after the build. -#}
    insert overwrite directory '{{ env_var("SHOPRANK_MARTS_BUILD_DIR") }}/_spark/{{ this.identifier }}' using parquet
    select * from {{ this }}
    {%- if latest_only %} where {{ latest_only }} = (select max({{ latest_only }}) from {{ this }}){% endif %}
    order by {{ order_by }}
{% endmacro %}


{% macro prepare_mart_exports() %}
    {#- on-run-start: the table postgres__export_mart records into, created once before any model runs (created by
        each post-hook, dbt's parallel threads raced on it: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
        against a concurrent twin and fails one of them on pg_type's unique index). -#}
    {{- return(adapter.dispatch('prepare_mart_exports')()) -}}
{% endmacro %}


{% macro postgres__prepare_mart_exports() %}
    create schema if not exists {{ target.schema }};
    create table if not exists {{ target.schema }}._mart_exports (mart text primary key, query text not null)
{% endmacro %}


{% macro default__prepare_mart_exports() %}
{% endmacro %}


{% macro default__export_mart(order_by, latest_only, by_day) %}
    {#- Other warehouses are queried in place. -#}
{% endmacro %}



{% macro prepare_sources() %}
    {#- on-run-start: make the raw sources readable where the warehouse cannot read the partitions in place by
        itself. DuckDB reads them with read_parquet (the sources' meta external_location), PostgreSQL from the
        tables warehouse.build.load_raw_to_postgres loads. -#}
    {{- return(adapter.dispatch('prepare_sources')()) -}}
{% endmacro %}


{% macro default__prepare_sources() %}
{% endmacro %}


{% macro spark__prepare_sources() %}
    {#- Spark: a view per raw table over its partition folders, read in place (dt from the dt=YYYY-MM-DD folder
        names, partition pruning on dt; the profile merges the partitions' schemas like union_by_name). Spark runs
        one statement per call, so each runs here and the hook itself is empty. -#}
    {%- if execute -%}
        {%- set raw_dir = env_var('SHOPRANK_RAW_DIR') -%}
        {%- for node in graph.sources.values() if node.source_name == 'raw' -%}
            {%- do run_query('create database if not exists ' ~ node.schema) -%}
            {%- do run_query(
                'create or replace view ' ~ node.schema ~ '.' ~ node.identifier
                ~ ' as select * from parquet.`' ~ raw_dir ~ '/' ~ node.name ~ '`'
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}


{% macro duckdb__get_delete_insert_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) -%}
    {#- dbt-duckdb's delete+insert (its macro of this name, which this root-project one overrides), except that the
        delete names the new partitions' keys as constants, `where dt in (date 'D-1', date 'D')`, instead of
        `in (select dt from <the new rows>)`: a semi join probing every stored row against each of the millions of new
        rows, whose cost grew with the history. Constants let DuckDB skip row groups by their min/max; the rows deleted
        are the same (a NULL key matched nothing either way). Any other key (not one date column): dbt-duckdb's own
        macro, called as it is. -#}
    {%- set keys = none -%}
    {%- if execute and unique_key is string -%}
        {%- set values = run_query(
            'select distinct ' ~ unique_key ~ ' from ' ~ source ~ ' where ' ~ unique_key ~ ' is not null order by 1'
        ).columns[0].values() -%}
        {%- set keys = [] -%}
        {%- for value in values -%}
            {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) -%}
                {%- do keys.append("date '" ~ value ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if keys | length != values | length -%}
            {%- set keys = none -%}  {#- not a date column -#}
        {%- endif -%}
    {%- endif -%}
    {%- if keys is none -%}
        {{- return(dbt.duckdb__get_delete_insert_merge_sql(
            target, source, unique_key, dest_columns, incremental_predicates
        )) -}}
    {%- endif -%}
    {%- set dest_cols_csv = get_quoted_csv(dest_columns | map(attribute="name")) -%}
    {%- set partial = [] -%}
    {%- set relabel_key = config.get('relabel_key') -%}
    {%- if keys and relabel_key -%}
        {#- training_examples: the days before its first whole day (partition_start(0, after_newest)) hold only the
            relabelled rows, which replace their stored twins by relabel_key; the whole days are replaced whole -#}
        {%- set first_day = partition_start(0, after_newest=true) -%}
        {%- if first_day -%}
            {%- set partial = keys | select('lt', first_day) | list -%}
            {%- set keys = keys | select('ge', first_day) | list -%}
        {%- endif -%}
    {%- endif -%}
    {%- if keys %}
            delete from {{ target }}
            where {{ unique_key }} in ({{ keys | join(', ') }})
            {%- if incremental_predicates %}
                {% for predicate in incremental_predicates %}
                    and {{ predicate }}
                {% endfor %}
            {%- endif -%};
    {%- endif %}
    {%- for day in partial %}
            delete from {{ target }}
            where {{ unique_key }} = {{ day }} and {{ relabel_key }} in (
                select {{ relabel_key }} from {{ source }} where {{ unique_key }} = {{ day }}
            );
    {%- endfor %}

    insert into {{ target }} ({{ dest_cols_csv }})
    (
        select {{ dest_cols_csv }}
        from {{ source }}
    )

{%- endmacro %}
