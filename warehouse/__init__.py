"""The warehouse stage: dbt builds of dbt_project/ and the publish step of the marts."""
