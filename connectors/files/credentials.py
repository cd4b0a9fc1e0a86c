"""Whose cloud credentials an object-storage connection reads with: its own, unless the operator says otherwise.

The platform's credentials (the environment's `AWS_*` / `GOOGLE_APPLICATION_CREDENTIALS`, an instance, pod
or workload-identity role) are not the spec author's: a run pod's role writes the compute-log bucket, which
holds every pipeline's run output, and the variables behind them are not among the names a spec may
reference. So a connection states its credential (or anonymous access), except where the operator opts in.
"""

from __future__ import annotations

import os
from typing import Any

from connectors.errors import ConnectorConfigError

# Schemes whose connections may use the platform's own cloud credentials (environment, instance or pod role,
# workload identity) when they state none: none unless the operator lists them (e.g. "s3,gs").
AMBIENT_CREDENTIALS_ENV = "AGGREGATOR_AMBIENT_CREDENTIALS"


def ambient_credentials_allowed(scheme: str, base: str = "", options: dict[str, Any] | None = None) -> bool:
    """Whether a `scheme` connection that names no credential may use the platform's own: where the operator
    opts in for the scheme, and for the uploads bucket (AGGREGATOR_UPLOADS_URL) at the uploads endpoint (the
    platform wrote those objects for the pipelines to read, and files connections under the uploads root are
    mapped there: aggregator/pipelines/uploads_objects.py)."""
    family = {"s3a": "s3", "gcs": "gs"}.get(scheme, scheme)
    if family in {part.strip().lower() for part in os.environ.get(AMBIENT_CREDENTIALS_ENV, "").split(",")}:
        return True
    uploads = os.environ.get("AGGREGATOR_UPLOADS_URL", "").rstrip("/")
    if family != "s3" or not uploads.startswith("s3://"):
        return False
    location = f"s3://{base.partition('://')[2]}".rstrip("/")
    same_endpoint = ((options or {}).get("endpoint_url") or None) == (
        os.environ.get("AGGREGATOR_UPLOADS_S3_ENDPOINT_URL") or None)  # signed requests go nowhere else
    return same_endpoint and (location == uploads or location.startswith(uploads + "/"))


def no_credential(scheme: str, how: str) -> ConnectorConfigError:
    """The refusal of a connection that names no credential, saying what to set."""
    return ConnectorConfigError(
        f"storage_options name no credential for this {scheme}:// location: set {how}. The platform's own "
        f"credentials (environment, instance or pod role) are used only where the operator allows it "
        f"({AMBIENT_CREDENTIALS_ENV}={scheme})")
