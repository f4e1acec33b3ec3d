{% macro digamma(x) %}
    {#- digamma(x) for x > 0 from its asymptotic series at x + 1 (|error| < 2e-3 at x = 0.5); the same expression as
        shoprank/taste.py's digamma, so the mart and the Python estimator agree exactly. `x` is evaluated 4 times. -#}
    (ln(({{ x }}) + 1) - 1 / (2 * (({{ x }}) + 1)) - 1 / (12 * (({{ x }}) + 1) * (({{ x }}) + 1)) - 1 / ({{ x }}))
{%- endmacro %}
