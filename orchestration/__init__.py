"""The top floor: pipeline steps, the CLI, Airflow plumbing (see docs/architecture.md)."""
