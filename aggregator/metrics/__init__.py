"""Prometheus metrics: pipeline runs, loads and checks read from Dagster's instance, proxy traffic counters."""
