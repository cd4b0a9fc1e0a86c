"""`az://container/prefix` (`abfs://`) locations: Azure Blob Storage through adlfs, with an account key or SAS.

adlfs falls back to whatever the process environment holds (`AZURE_STORAGE_CONNECTION_STRING`, then
`DefaultAzureCredential`: environment, managed identity, the Azure CLI's login). Here the connection states its
credential and the endpoint it reaches, and nothing else is consulted: the options are turned into one
connection string, which adlfs prefers over every ambient source.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from connectors.errors import ConnectorConfigError

AZURE_OPTIONS = ("account_name", "account_key", "sas_token", "endpoint_url")


def azure_endpoint(options: dict[str, Any]) -> tuple[str, int]:
    """(host, port) of the blob service: `endpoint_url`, else the account's public endpoint."""
    if options.get("endpoint_url"):
        parts = urlsplit(str(options["endpoint_url"]))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectorConfigError(f"storage_options.endpoint_url {options['endpoint_url']!r} is not an "
                                       "http(s) URL (e.g. https://myaccount.blob.core.windows.net)")
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    return f"{options.get('account_name')}.blob.core.windows.net", 443


def _connection_string(options: dict[str, Any]) -> str:
    for name in ("account_name", "account_key", "sas_token", "endpoint_url"):
        if ";" in str(options.get(name) or ""):
            raise ConnectorConfigError(f"storage_options.{name} may not contain ';'")
    fields = [f"AccountName={options['account_name']}"]
    if options.get("endpoint_url"):
        fields.append(f"BlobEndpoint={str(options['endpoint_url']).rstrip('/')}")
    else:
        fields += ["DefaultEndpointsProtocol=https", "EndpointSuffix=core.windows.net"]
    if options.get("account_key"):
        fields.append(f"AccountKey={options['account_key']}")
    else:
        fields.append(f"SharedAccessSignature={str(options['sas_token']).lstrip('?')}")
    return ";".join(fields)


def azure_filesystem(base: str, options: dict[str, Any]) -> tuple[Any, str]:
    """(fsspec filesystem, root `container/prefix`) for an `az://` / `abfs://` location."""
    if not options.get("account_name"):
        raise ConnectorConfigError("storage_options.account_name is required for az:// locations (the storage "
                                   "account holding the container)")
    if bool(options.get("account_key")) == bool(options.get("sas_token")):
        raise ConnectorConfigError("storage_options: set exactly one of account_key and sas_token (as "
                                   "{env: NAME}) for az:// locations")
    try:
        from adlfs import AzureBlobFileSystem
    except ImportError as exc:
        raise ConnectorConfigError("az:// locations need adlfs: install data-aggregator[azure]") from exc
    fs = AzureBlobFileSystem(connection_string=_connection_string(options), skip_instance_cache=True)
    return fs, base.partition("://")[2]
