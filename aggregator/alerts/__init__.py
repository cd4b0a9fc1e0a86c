"""Alerts on Dagster's own signals: run status sensors, asset check evaluations, freshness and spec loading."""
