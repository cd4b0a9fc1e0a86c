"""Pipelines as specs: YAML files validated by pydantic and compiled into Dagster asset graphs."""
