"""HTTP JSON APIs as sources."""

from connectors.rest.config import RestStream
from connectors.rest.resource import RestApiResource

__all__ = ["RestApiResource", "RestStream"]
