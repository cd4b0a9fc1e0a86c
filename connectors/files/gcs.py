"""`gs://bucket/prefix` (`gcs://`) locations: Google Cloud Storage through gcsfs, with a service-account key or
anonymous access.

The connection states its credential, and nothing else is consulted: gcsfs would otherwise take whatever the
process has (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud login, the metadata server's workload identity),
which are the platform's credentials, not the spec author's (connectors/files/credentials.py). The key is turned into read-only credentials here, so the token endpoint it
names passes the egress rule like the storage endpoint, and the read scope is all a load can use.

gcsfs's default filesystem class (`GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`, on by default) first asks the Storage
Control gRPC API what kind of bucket it reads; the plain `GCSFileSystem` is used instead: one HTTP client to
one checked endpoint, and no 60 s gRPC timeout against an S3-style emulator or a proxy that only speaks HTTP.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from connectors.egress import pinned_address, url_host
from connectors.errors import ConnectorConfigError
from connectors.files.credentials import ambient_credentials_allowed, no_credential

GCS_OPTIONS = ("endpoint_url", "credentials_json", "anon", "project")
READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"


def _pinned(url: str, field: str) -> str:
    """`url` after the egress check of its host; a plain-HTTP URL gets the checked address in place of its name
    (the client would otherwise resolve it again), HTTPS keeps the name its certificate is checked against."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectorConfigError(f"{field} {url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = pinned_address(parts.hostname, port, field)
    if parts.scheme != "http":
        return url
    return parts._replace(netloc=url_host(address) + (f":{parts.port}" if parts.port else "")).geturl()


def _service_account(raw: Any) -> Any:
    """Read-only credentials of a service-account key (its JSON text, as given by `{env: NAME}`); errors never
    quote the key."""
    from google.oauth2 import service_account

    try:
        info = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        raise ConnectorConfigError("storage_options.credentials_json is not JSON: give the service account's key "
                                   "file content, e.g. {env: GCS_KEY_JSON}") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConnectorConfigError("storage_options.credentials_json must be a service account key (a JSON "
                                   'object with "type": "service_account")')
    info["token_uri"] = _pinned(str(info.get("token_uri") or "https://oauth2.googleapis.com/token"),
                                "storage_options.credentials_json token_uri")
    try:
        return service_account.Credentials.from_service_account_info(info, scopes=[READ_ONLY])
    except (KeyError, ValueError) as exc:
        missing = f" (missing {exc})" if isinstance(exc, KeyError) else ""
        raise ConnectorConfigError(f"storage_options.credentials_json is not a usable service account key{missing}: "
                                   "check that it is the whole key file") from None


def gcs_filesystem(base: str, options: dict[str, Any], endpoint_url: str | None) -> tuple[Any, str]:
    """(fsspec filesystem, root `bucket/prefix`) for a `gs://` location; `endpoint_url` is the checked one."""
    try:
        from gcsfs.core import GCSFileSystem
    except ImportError as exc:
        raise ConnectorConfigError("gs:// locations need gcsfs: install data-aggregator[gcs]") from exc
    credential: Any  # gcsfs's `token`: a method name or a Credentials object
    if str(options.get("anon", "")).lower() in ("1", "true", "yes"):
        credential = "anon"
    elif options.get("credentials_json"):
        credential = _service_account(options["credentials_json"])
    elif ambient_credentials_allowed("gs"):
        credential = "google_default"
    else:
        raise no_credential("gs", 'credentials_json (the service account key, as {env: NAME}), or anon: "true" '
                                  "for a public bucket")
    fs = GCSFileSystem(project=str(options.get("project") or ""), token=credential, endpoint_url=endpoint_url,
                       skip_instance_cache=True)
    return fs, base.partition("://")[2]
