"""Files in object storage and on SFTP servers, read through fsspec.

`s3://bucket/prefix` uses Arrow's S3 client (C++, in the pyarrow wheel the readers already need) behind
fsspec's `ArrowFSWrapper`: no second HTTP stack, and listing and downloading run outside the GIL. `gs://`
(gcsfs), `az://` (adlfs) and `sftp://` (paramiko) each have a module that builds their fsspec filesystem from the
connection's own credential and the checked endpoint (gcs.py, azure_blob.py, sftp.py).

A listing is one recursive walk of the base (for S3 one paginated ListObjectsV2), matched against the glob
with fsspec's `glob_translate` (pathlib's rules: `*` stays in one directory, `**` crosses any number). Errors
of the walk are raised, never skipped: a refused credential must fail the load, not look like an empty bucket.

The endpoint must be one the platform lets connectors reach (connectors/egress.py): the host of
`endpoint_url`, the SFTP server or the cloud's default endpoint, every address it resolves to. Messages never
contain credentials: every text from the storage library goes through `mask`.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from connectors.egress import pinned_address, url_host
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files.azure_blob import AZURE_OPTIONS, azure_filesystem
from connectors.files.credentials import ambient_credentials_allowed, no_credential
from connectors.files.entry import Entry
from connectors.files.gcs import GCS_OPTIONS, gcs_filesystem
from connectors.files.sftp import SFTP_OPTIONS, sftp_filesystem
from connectors.redact import MASK, is_secret_key, sanitize_url

# Schemes read through fsspec, and the default endpoint each reaches when `endpoint_url` is not set.
REMOTE_SCHEMES: dict[str, str | None] = {
    "s3": "s3.amazonaws.com", "s3a": "s3.amazonaws.com",
    "gs": "storage.googleapis.com", "gcs": "storage.googleapis.com",
    "az": None, "abfs": None,  # <account_name>.blob.core.windows.net
    "sftp": None,  # the URL's host
}
S3_OPTIONS = ("endpoint_url", "key", "secret", "token", "region", "anon")
_DEFAULT_PORTS = {"http": 80, "https": 443, "sftp": 22}
COPY_BYTES = 8 << 20  # a download moves this much at a time: memory stays flat whatever the object's size


def is_remote(base: str) -> bool:
    """True for a `scheme://` location read through fsspec."""
    scheme, sep, _ = base.partition("://")
    return bool(sep) and scheme.lower() in REMOTE_SCHEMES


def mask(text: str, options: dict[str, Any]) -> str:
    """`text` with the value of every credential option (secrets, and key ids and user names, which are half
    of one) replaced by `***`."""
    values = [str(v) for k, v in options.items()
              if (is_secret_key(k) or "key" in k.lower() or "user" in k.lower()) and len(str(v)) >= 4]
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def check_option_names(base: str, options: dict[str, Any]) -> None:
    """ConnectorConfigError for a storage option the scheme's filesystem does not take."""
    scheme = base.partition("://")[0].lower()
    allowed = {"s3": S3_OPTIONS, "s3a": S3_OPTIONS, "sftp": SFTP_OPTIONS, "az": AZURE_OPTIONS,
               "abfs": AZURE_OPTIONS, "gs": GCS_OPTIONS, "gcs": GCS_OPTIONS}.get(scheme)
    unknown = sorted(set(options) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ConnectorConfigError(f"storage_options: {', '.join(unknown)} not understood for {scheme}:// "
                                   f"locations; allowed: {', '.join(allowed or ())}")


def _endpoint(scheme: str, base: str, options: dict[str, Any]) -> tuple[str, int] | None:
    """(host, port) the storage library will connect to, as far as the options tell."""
    url = options.get("endpoint_url")
    if url:
        parts = urlsplit(str(url))
        if not parts.hostname or parts.scheme not in ("http", "https"):
            raise ConnectorConfigError(f"storage_options.endpoint_url {url!r} is not an http(s) URL "
                                       "(e.g. https://s3.example.com)")
        return parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme]
    if scheme == "sftp":
        parts = urlsplit(base)
        if not parts.hostname:
            raise ConnectorConfigError(f"base_dir {sanitize_url(base)!r}: an sftp:// location names its server, "
                                       "e.g. sftp://user@sftp.example.com/exports")
        try:
            return parts.hostname, parts.port or int(options.get("port") or 22)
        except ValueError:
            raise ConnectorConfigError(f"storage_options.port {options.get('port')!r} is not a port number") from None
    if scheme in ("az", "abfs") and options.get("account_name"):
        return f"{options['account_name']}.blob.core.windows.net", 443
    default = REMOTE_SCHEMES.get(scheme)
    return (default, 443) if default else None


@dataclass(frozen=True)
class Endpoint:
    """Where the storage library connects: the endpoint's name, port and the checked address it must use."""

    host: str
    port: int
    address: str


def check_endpoint(scheme: str, base: str, options: dict[str, Any]) -> Endpoint | None:
    """The endpoint with the address to connect to, after every address of its name passed egress.py; None
    when the options name no endpoint (a scheme fsspec resolves itself)."""
    target = _endpoint(scheme, base, options)
    if target is None:
        return None
    host, port = target
    return Endpoint(host, port, pinned_address(host, port, "base_dir: storage endpoint"))


def pinned_endpoint_url(url: str, endpoint: Endpoint | None) -> str:
    """`url` to reach the checked address: a plain-HTTP endpoint gets the address in place of its name (the
    library would otherwise resolve the name again); HTTPS keeps the name its certificate is checked against."""
    parts = urlsplit(url)
    if endpoint is None or parts.scheme != "http" or parts.hostname is None:
        return url
    netloc = url_host(endpoint.address) + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _s3(base: str, options: dict[str, Any], endpoint: Endpoint | None) -> Any:
    """Arrow's S3 client for fsspec-style options (the names s3fs takes)."""
    import pyarrow.fs as pafs
    from fsspec.implementations.arrow import ArrowFSWrapper

    kwargs: dict[str, Any] = {"connect_timeout": 10, "request_timeout": 60}
    if options.get("endpoint_url"):
        parts = urlsplit(pinned_endpoint_url(str(options["endpoint_url"]), endpoint))
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme)
        kwargs["region"] = options.get("region") or "us-east-1"  # S3-compatible servers mostly ignore it
    elif options.get("region"):
        kwargs["region"] = options["region"]
    if str(options.get("anon", "")).lower() in ("1", "true", "yes"):
        kwargs["anonymous"] = True
    elif options.get("key") or options.get("secret"):
        if not (options.get("key") and options.get("secret")):
            raise ConnectorConfigError("storage_options: key and secret go together (an access key id and its "
                                       "secret access key)")
        kwargs.update(access_key=options["key"], secret_key=options["secret"])
        if options.get("token"):
            kwargs["session_token"] = options["token"]
    elif not ambient_credentials_allowed("s3", base, options):
        raise no_credential("s3", "key and secret (as {env: NAME}), or anon: \"true\" for a public bucket")
    return ArrowFSWrapper(pafs.S3FileSystem(**kwargs))


def _modified(info: dict[str, Any]) -> dt.datetime:
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created", "creation_time"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(0, tz=dt.UTC)  # a store that tells no time: name and size still decide


def _first_line(text: str) -> str:
    """The storage's own message without the response body some SDKs append (Azure's XML error document),
    keeping its error code."""
    code = re.search(r"^ErrorCode:(\S+)", text, re.MULTILINE)
    first = text.strip().split("\n", 1)[0]
    return f"{first} ErrorCode:{code.group(1)}" if code and code.group(1) not in first else first


class RemoteLocation:
    """Objects under `scheme://bucket/prefix` (or files under `sftp://host/path`), through fsspec."""

    def __init__(self, base: str, options: dict[str, Any]) -> None:
        self.base = base.rstrip("/")
        self.scheme = base.partition("://")[0].lower()
        self.options = dict(options)
        self._fs: Any = None
        self._root = ""

    @property
    def display(self) -> str:
        return sanitize_url(self.base)

    def _fail(self, what: str, exc: BaseException) -> SourceReadError:
        text = mask(_first_line(f"{exc}"), self.options)
        if isinstance(exc, PermissionError) or re.search(
                r"ACCESS_DENIED|AccessDenied|INVALID_ACCESS_KEY_ID|InvalidAccessKeyId|SIGNATURE_DOES_NOT_MATCH|"
                r"SignatureDoesNotMatch|Forbidden|Authentication failed|AuthenticationFailed|AuthorizationFailure|"
                r"Invalid Credentials|invalid_grant", text):
            return SourceReadError(f"{self.display}: {what}: access denied: the storage refused the credentials in "
                                   f"storage_options ({text}); check the credentials the connection names")
        return SourceReadError(f"{self.display}: {what}: {text}")

    def fs(self) -> Any:
        """The fsspec filesystem, opened on first use (after the egress check)."""
        if self._fs is None:
            check_option_names(self.base, self.options)
            endpoint = check_endpoint(self.scheme, self.base, self.options)
            if self.scheme in ("s3", "s3a"):
                self._fs, self._root = _s3(self.base, self.options, endpoint), self.base.partition("://")[2]
            elif self.scheme == "sftp":
                try:
                    self._fs, self._root = sftp_filesystem(self.base, self.options, endpoint.address if endpoint else None)
                except (ConnectorConfigError, SourceReadError):
                    raise
                except Exception as exc:  # refused login, no route, timeout: said without the credentials
                    raise self._fail("connecting", exc) from exc
            elif self.scheme in ("az", "abfs"):
                options = dict(self.options)
                if options.get("endpoint_url"):
                    options["endpoint_url"] = pinned_endpoint_url(str(options["endpoint_url"]), endpoint)
                self._fs, self._root = azure_filesystem(self.base, options)
            elif self.scheme in ("gs", "gcs"):
                url = self.options.get("endpoint_url")
                self._fs, self._root = gcs_filesystem(
                    self.base, self.options, pinned_endpoint_url(str(url), endpoint) if url else None)
            self._root = self._root.rstrip("/")
        return self._fs

    def _walk(self) -> dict[str, dict[str, Any]]:
        """Every file under the base: path -> info (size, modification time)."""
        from fsspec.implementations.arrow import ArrowFSWrapper

        fs = self.fs()
        try:
            if isinstance(fs, ArrowFSWrapper):
                import pyarrow.fs as pafs

                selector = pafs.FileSelector(self._root, recursive=True, allow_not_found=True)
                return {info.path: {"size": info.size, "mtime": info.mtime}
                        for info in fs.fs.get_file_info(selector) if info.type == pafs.FileType.File}
            fs.invalidate_cache()
            found: dict[str, dict[str, Any]] = fs.find(self._root, detail=True, on_error="raise")
            return found
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise self._fail("listing", exc) from exc

    def _entries(self, pattern: str | None) -> list[Entry]:
        from fsspec.utils import glob_translate

        listing = self._walk()  # opens the filesystem, which sets the root
        prefix = self._root + "/" if self._root else ""
        matcher = re.compile(glob_translate(prefix + pattern)) if pattern is not None else None
        out = []
        for path, info in listing.items():
            path = path.lstrip("/") if not self._root.startswith("/") else path
            if info.get("type") == "directory" or not path.startswith(prefix):
                continue
            if matcher is not None and not matcher.fullmatch(path):
                continue
            version = str(info.get("ETag") or info.get("etag") or "").strip('"')
            out.append(Entry(name=path[len(prefix):], size=int(info.get("size") or 0), modified=_modified(info),
                             version=version))
        return sorted(out, key=lambda e: e.name)

    def entries(self, pattern: str) -> list[Entry]:
        return self._entries(pattern)

    def all_entries(self) -> list[Entry]:
        return self._entries(None)

    def shown(self, entry: Entry) -> str:
        return f"{self.display}/{entry.name}"

    def _copy_to(self, entry: Entry, local: Path) -> None:
        from fsspec.implementations.arrow import ArrowFSWrapper

        fs, source = self.fs(), f"{self._root}/{entry.name}"
        with open(local, "wb") as out:
            if isinstance(fs, ArrowFSWrapper):  # one streaming GET instead of ranged reads
                with fs.fs.open_input_stream(source, buffer_size=COPY_BYTES) as stream:
                    while chunk := stream.read(COPY_BYTES):
                        out.write(chunk)
                return
            with fs.open(source, "rb", block_size=COPY_BYTES) as src:
                shutil.copyfileobj(src, out, COPY_BYTES)

    @contextmanager
    def local_path(self, entry: Entry) -> Iterator[Path]:
        """The object's bytes in a private temporary file named like the object (its suffix picks the format),
        removed afterwards whatever happens. Readers then run exactly as on local files; their messages name
        the object's URL, not the copy."""
        scratch = Path(tempfile.mkdtemp(prefix="aggregator-files-"))
        try:
            local = scratch / PurePosixPath(entry.name).name
            try:
                self._copy_to(entry, local)
            except Exception as exc:
                raise self._fail(f"reading {entry.name}", exc) from exc
            try:
                yield local
            except SourceReadError as exc:
                raise SourceReadError(str(exc).replace(str(local), self.shown(entry))) from exc.__cause__
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def check(self) -> str:
        count = len(self._entries(None))
        if count == 0 and not self._root_exists():
            raise SourceReadError(f"{self.display}: no such bucket or directory")
        return f"{self.display}: readable, {count} files"

    def _root_exists(self) -> bool:
        """An empty listing is an empty prefix or a missing bucket; only the latter fails `check`."""
        fs = self.fs()
        bucket = self._root.split("/", 1)[0] if self.scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs") else self._root
        try:
            return bool(fs.exists(bucket))
        except Exception as exc:
            raise self._fail("checking", exc) from exc
