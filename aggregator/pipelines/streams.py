"""The stream union: what a source can read, one config model per connector type."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from connectors.files.config import FileStream
from connectors.rest.config import RestStream
from connectors.sql.config import SqlStream
from connectors.streams.config import RedisStream

Stream = Annotated[FileStream | SqlStream | RestStream | RedisStream, Field(discriminator="type")]
STREAM_MODELS = (FileStream, SqlStream, RestStream, RedisStream)
