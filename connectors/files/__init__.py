"""Local files as sources."""

from connectors.files.config import FileStream
from connectors.files.resource import FilesResource

__all__ = ["FileStream", "FilesResource"]
