"""How much the uploads of one user and of everyone may hold, and how long a staged upload may sit idle."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

_ENV = {
    "max_file_bytes": "AGGREGATOR_UPLOAD_MAX_BYTES",
    "user_quota_bytes": "AGGREGATOR_UPLOAD_USER_QUOTA_BYTES",
    "total_quota_bytes": "AGGREGATOR_UPLOAD_TOTAL_QUOTA_BYTES",
    "staged_ttl_s": "AGGREGATOR_UPLOAD_STAGED_TTL_S",
}


class UploadLimits(BaseModel):
    """Limits of `PUT /api/uploads/...`; each is an environment variable of the proxy."""

    model_config = ConfigDict(frozen=True)

    max_file_bytes: int = Field(1 << 30, gt=0, description="AGGREGATOR_UPLOAD_MAX_BYTES: the largest upload (413).")
    user_quota_bytes: int = Field(
        10 << 30, gt=0,
        description="AGGREGATOR_UPLOAD_USER_QUOTA_BYTES: per user, the declared sizes of their staged uploads plus "
        "their delivered files still in sensor directories; a new upload past it gets 413.")
    total_quota_bytes: int = Field(
        50 << 30, gt=0,
        description="AGGREGATOR_UPLOAD_TOTAL_QUOTA_BYTES: everything under the uploads root (staged and delivered, "
        "anyone's); a new upload past it, or past the free disk space, gets 507.")
    staged_ttl_s: float = Field(
        86400.0, gt=0,
        description="AGGREGATOR_UPLOAD_STAGED_TTL_S: a staged upload that received no chunk for this long is removed "
        "(when touched, and by the sweep each new upload runs).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UploadLimits:
        env = os.environ if environ is None else environ
        return cls.model_validate({field: env[var] for field, var in _ENV.items() if env.get(var)})
