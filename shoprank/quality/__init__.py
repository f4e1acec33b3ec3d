"""Data-quality suites (Great Expectations 1.x, code-first) and the functions that run them."""
