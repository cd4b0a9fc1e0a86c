"""What run config a trigger may carry: op config of the pipeline's own assets, nothing else.

Everything else in Dagster's run config decides where a run reads, writes and sends secrets from, or what
runs it: `resources` (the warehouse URL, a connection's `base_url`/`base_dir`, its token), `execution` (the
executor, and on Kubernetes its pod config), `loggers`. Those come from the platform and the specs, which
editors own; a launcher may only start the pipeline as declared. The rule is a whitelist, so a run-config
key Dagster adds later is refused until someone decides it is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALLOWED_OP_KEYS = frozenset({"config"})


class RunConfigRefused(ValueError):
    """A run-config key a trigger may not set; `key` is its dotted path, e.g. `run_config.resources`."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key


def check_trigger_run_config(run_config: Mapping[str, Any], pipeline: str, ops: frozenset[str]) -> None:
    """Raise `RunConfigRefused` naming the first key outside `ops.<one of ops>.config`."""
    allowed = "only run_config.ops.<asset>.config of the pipeline's own assets may be set"
    for key in sorted(run_config):
        if key != "ops":
            raise RunConfigRefused(f"run_config.{key}", f"refused; {allowed} (resources, execution and loggers "
                                   "come from the platform and the specs)")
    op_config = run_config.get("ops") or {}
    if not isinstance(op_config, Mapping):
        raise RunConfigRefused("run_config.ops", "must be a mapping of asset op name to its config")
    for op in sorted(op_config):
        if op not in ops:
            raise RunConfigRefused(f"run_config.ops.{op}", f"not an op of pipeline {pipeline!r}; its ops: "
                                   f"{', '.join(sorted(ops)) or 'none'}")
        entry = op_config[op]
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise RunConfigRefused(f"run_config.ops.{op}", "must be a mapping with `config`")
        for sub in sorted(entry):
            if sub not in ALLOWED_OP_KEYS:
                raise RunConfigRefused(f"run_config.ops.{op}.{sub}", f"refused; {allowed}")
