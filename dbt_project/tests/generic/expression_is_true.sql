{% test expression_is_true(model, expression) %}
{#- fails with every row where the boolean SQL expression is false (nulls count as false) -#}

select * from {{ model }} where not coalesce(({{ expression }}), false)

{% endtest %}
