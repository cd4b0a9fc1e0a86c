"""The stream union: what a source can read, one model per registered connector type (connectors/registry.py)."""

from __future__ import annotations

from connectors.registry import STREAM_MODELS, Stream

__all__ = ["STREAM_MODELS", "Stream"]
