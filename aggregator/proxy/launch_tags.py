"""Moved to `aggregator.proxy.policy.launch_tags`; re-exported so modules not yet updated keep importing it."""

from __future__ import annotations

from aggregator.proxy.policy.launch_tags import LAUNCH_ARGS, USER_TAG, stamp_user, to_json_input

__all__ = ["LAUNCH_ARGS", "USER_TAG", "stamp_user", "to_json_input"]
