"""Uploads staged in S3-compatible object storage, so that any proxy replica can take any chunk of an upload.

Chunks are objects under `<prefix>/.staging/<upload id>/`, one per accepted `Content-Range`; the last chunk
composes them into the final object with one multipart upload (s3_compose.py: server-side copies, or a
bounded buffer), which appears whole and at once and never replaces an existing object (`If-None-Match: *`).

Serialization across replicas is in the platform database (PostgreSQL in production, SQLite in dev), not in
S3 conditional writes: the quota check needs one lock over every upload (a count, not one object), and the
database already is the state every replica shares. No lock is held while bytes move, though:
  * a chunk is written under a name no other request uses, then accepted by a compare-and-set on the upload's
    `received` offset; of two requests racing with the same chunk exactly one wins, the loser deletes its
    object and gets 409 with the offset to resume from;
  * accepting the last chunk also claims the delivery (`state = delivering`, `claimed_at`); the deliverer
    renews the claim between parts, and a claim not renewed for `CLAIM_S` is taken over by whichever request
    next touches the upload (a replica that died mid-delivery), which composes again: an object already at
    the final key that names this upload in its metadata is the earlier attempt's, finished;
  * admitting a new upload holds a one-row admission lock (the UPDATE of `proxy_upload_admissions`) while it
    counts quotas, so two replicas cannot both fit under a quota meant for one.
Crash leftovers: chunk objects of an upload the database no longer knows, older than the staged TTL, are
deleted by the sweep each new upload runs; incomplete multipart uploads are aborted on error (a bucket
lifecycle rule `AbortIncompleteMultipartUpload` covers a replica killed mid-compose).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.s3_compose import UPLOAD_ID_META, Exists, compose
from aggregator.proxy.uploads.s3_rows import Row, UploadRows
from aggregator.proxy.uploads.store import Chunk, UploadDeleted, UploadStatus
from aggregator.uploads_s3 import STAGING, S3Root

log = logging.getLogger(__name__)
CLAIM_S = 120.0  # a delivery whose claim was not renewed for this long is taken over
_WAIT_STEP_S = 0.2


@contextmanager
def _storage_errors(root: S3Root) -> Iterator[None]:
    """The bucket unreachable or refusing us is the platform's problem, not the client's: 503 (retry the same
    chunk; nothing was accepted), with the reason logged (no credentials are in botocore's messages)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        log.error("uploads bucket %s failed: %s", root.url, exc)
        raise ApiError(503, f"the uploads storage did not answer ({code}); send the same chunk again "
                       "(GET this path for the offset)") from exc


class S3Uploads:
    """`UploadStore` on an S3 bucket and prefix, with its state in the platform database."""

    def __init__(self, root: S3Root, engine: Engine, limits: UploadLimits, client: Any | None = None) -> None:
        self.s3root = root
        self.bucket = root.bucket
        self.limits = limits
        self.rows = UploadRows(engine)
        self.client = client if client is not None else root.client()

    @property
    def root(self) -> Path:
        return self.s3root.local_root

    # ------------------------------------------------------------------------------------------ the protocol

    def status(self, pipeline: str, filename: str, final: Path) -> UploadStatus:
        with _storage_errors(self.s3root):
            return self._status(pipeline, filename, final)

    def append(self, pipeline: str, filename: str, final: Path, user: str, chunk: Chunk) -> UploadStatus:
        with _storage_errors(self.s3root):
            return self._append(pipeline, filename, final, user, chunk)

    def cancel(self, pipeline: str, filename: str, authorize: Callable[[str], None]) -> UploadDeleted:
        with _storage_errors(self.s3root):
            return self._cancel(pipeline, filename, authorize)

    # ------------------------------------------------------------------------------------------ the work

    def _status(self, pipeline: str, filename: str, final: Path) -> UploadStatus:
        row = self._settle(self.rows.get(pipeline, filename))
        if row is not None:
            return UploadStatus(filename=filename, received=row.received, total=row.total, complete=False)
        size = self._size(self.s3root.key_of(final))
        if size is not None:
            return UploadStatus(filename=filename, received=size, total=size, complete=True)
        return UploadStatus(filename=filename, received=0, total=None, complete=False)

    def _append(self, pipeline: str, filename: str, final: Path, user: str, chunk: Chunk) -> UploadStatus:
        key = self.s3root.key_of(final)
        row = self._settle(self.rows.get(pipeline, filename))
        if row is None:
            if chunk.first != 0 or self._size(key) is not None:
                return self._not_staged(filename, key, chunk)
            row = self._start(pipeline, filename, user, chunk.total, key)
        if row.total != chunk.total:
            raise ApiError(409, f"this upload was started with total {row.total} bytes, not {chunk.total}")
        if row.state == "delivering":
            return self._while_delivering(row, filename, key, chunk)
        if chunk.first != row.received:
            raise ApiError(409, f"expected the chunk starting at byte {row.received}; resume from there "
                           "(GET this path for the offset)")
        object_key = self.s3root.key(STAGING, row.id, f"{chunk.first:015d}-{uuid.uuid4().hex[:8]}")
        self.client.put_object(Bucket=self.bucket, Key=object_key, Body=chunk.data)
        accepted = self.rows.accept(row, chunk.first, len(chunk.data), object_key)
        if accepted is None:  # another request's chunk won, or the upload was cancelled or expired meanwhile
            self._delete([object_key])
            now = self.rows.get(pipeline, filename)
            if now is not None and now.id == row.id:
                if now.state == "delivering":
                    return self._while_delivering(now, filename, key, chunk)
                raise ApiError(409, f"expected the chunk starting at byte {now.received}; resume from there "
                               "(GET this path for the offset)")
            return self._not_staged(filename, key, chunk)
        if accepted.state == "delivering":
            self._deliver(accepted)
            return self._status(pipeline, filename, final)
        return UploadStatus(filename=filename, received=accepted.received, total=accepted.total, complete=False)

    def _cancel(self, pipeline: str, filename: str, authorize: Callable[[str], None]) -> UploadDeleted:
        row = self._settle(self.rows.get(pipeline, filename))
        if row is None:
            raise ApiError(404, f"no staged upload of {filename!r} for {pipeline!r} (a delivered file is the "
                           "pipeline's input now, not an upload)")
        authorize(row.user)
        if row.state == "delivering" or not self.rows.remove(row, state="staging"):
            raise ApiError(409, f"{filename} is being delivered into the sensor's directory; it cannot be cancelled")
        self._drop_objects(row.id)
        return UploadDeleted(filename=filename, removed_bytes=row.received)

    # ------------------------------------------------------------------------------------------- lifecycle

    def _start(self, pipeline: str, filename: str, user: str, total: int, key: str) -> Row:
        """Admit a new upload (quotas) and record it; another replica's concurrent start of it wins the same."""
        self.sweep()  # expire abandoned uploads before counting them
        with self.rows.admitting() as conn:
            if not self.rows.exists(conn, pipeline, filename):
                mine, staged = self.rows.staged_totals(conn, user)
                counted: list[tuple[str, int]] = []
                gone: list[tuple[str, int]] = []
                for upload_id, final_key, size in self.rows.delivered_of(conn, user):
                    (counted if self._size(final_key) == size else gone).append((upload_id, size))
                self.rows.forget_delivered(conn, [i for i, _ in gone])  # consumed: the ledger forgets it
                mine += sum(size for _, size in counted)
                limits = self.limits
                if mine + total > limits.user_quota_bytes:
                    raise ApiError(413, f"upload quota of {user}: {mine} of {limits.user_quota_bytes} bytes in use "
                                   "(staged uploads and delivered files not yet consumed); "
                                   f"{total} more do not fit. Cancel staged uploads (DELETE this path) or wait "
                                   "until the pipeline has consumed earlier files")
                everyone = staged + self._visible_bytes()
                if everyone + total > limits.total_quota_bytes:
                    raise ApiError(507, f"the uploads area holds {everyone} of {limits.total_quota_bytes} bytes; "
                                   f"{total} more do not fit. Try again once pipelines have consumed their files")
                self.rows.insert(conn, pipeline, filename, user, total, key)
        row = self.rows.get(pipeline, filename)
        if row is None:  # cancelled between our insert and this read: start again
            raise ApiError(409, f"the upload of {filename} was cancelled as it started; start again")
        return row

    def _settle(self, row: Row | None) -> Row | None:
        """`row` brought up to date: expired uploads removed, a delivery nobody is finishing finished."""
        if row is None:
            return None
        now = time.time()
        if row.state == "staging" and now - row.last_at > self.limits.staged_ttl_s:
            if self.rows.remove(row, state="staging", last_at=row.last_at):
                log.info("staged upload %s/%s expired (no chunk for %ss); removed", row.pipeline, row.filename,
                         self.limits.staged_ttl_s)
                self._drop_objects(row.id)
                return None
            return self._settle(self.rows.by_id(row.id))
        if row.state == "delivering" and (row.claimed_at or 0) < now - CLAIM_S:
            claimed = self.rows.claim(row, now - CLAIM_S)
            if claimed is not None:
                log.warning("upload %s: taking over a delivery that stopped (a replica died?)", row.id)
                self._deliver(claimed)
            return self.rows.by_id(row.id)  # gone once delivered; else someone else holds a fresh claim
        return row

    def _deliver(self, row: Row) -> None:
        """Compose the chunks at the final key (this request holds the claim), then ledger the file."""
        key = row.final_key
        claim: list[Row] = [row]

        def keep_claim() -> bool:
            """Renew the claim now and then (a quarter of CLAIM_S), not once per chunk of a large upload."""
            if time.time() - (claim[0].claimed_at or 0) < CLAIM_S / 4:
                return True
            renewed = self.rows.renew(claim[0])
            if renewed is not None:
                claim[0] = renewed
            return renewed is not None

        if self._owner(key) == row.id:
            self._finish(row)  # composed before a crash; only the bookkeeping was left
            return
        chunks = self.rows.chunks(row.id)
        ends = [0]
        for c in chunks:
            ends.append(ends[-1] + c.size)
        if ends[-1] != row.total or any(c.first != end for c, end in zip(chunks, ends, strict=False)):
            log.error("upload %s: staged chunks do not add up to %d bytes; removed", row.id, row.total)
            self.rows.remove(row)
            self._drop_objects(row.id)
            return
        try:
            compose(self.client, self.bucket, key, row.id, chunks, keep_claim)
        except Exists:
            if self._owner(key) != row.id:
                # Someone put another file of that name there after this upload started (uploads never replace
                # a file): roll this one back rather than overwrite theirs.
                log.warning("upload %s not delivered: %s appeared meanwhile; staged bytes removed", row.id,
                            row.filename)
                self.rows.remove(row)
                self._drop_objects(row.id)
                return
        self._finish(claim[0])

    def _finish(self, row: Row) -> None:
        self.rows.delivered(row)
        self._drop_objects(row.id)

    def _while_delivering(self, row: Row, filename: str, key: str, chunk: Chunk) -> UploadStatus:
        """A chunk for an upload another request is delivering: a retried last chunk waits for the delivery and
        is answered as delivered; any other is told where the upload stands."""
        if chunk.last + 1 != row.total:
            raise ApiError(409, f"expected the chunk starting at byte {row.received}; the upload is complete and "
                           "being delivered (GET this path)")
        deadline = time.monotonic() + CLAIM_S * 2
        while time.monotonic() < deadline:
            current = self._settle(self.rows.by_id(row.id))
            if current is None:
                return self._not_staged(filename, key, chunk)
            time.sleep(_WAIT_STEP_S)
        raise ApiError(503, f"{filename} is still being delivered; GET this path for its state")

    def _not_staged(self, filename: str, key: str, chunk: Chunk) -> UploadStatus:
        """A chunk for an upload with nothing staged: a retry of the last chunk of a delivered file is answered
        as delivered (the client lost the answer); anything else says where to start."""
        size = self._size(key)
        if size is not None:
            if chunk.last + 1 == chunk.total == size:
                got = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={chunk.first}-{chunk.last}")
                if got["Body"].read() == chunk.data:
                    return UploadStatus(filename=filename, received=size, total=size, complete=True)
            raise ApiError(409, f"{filename} is already in the sensor's directory; choose another name")
        raise ApiError(409, f"no upload of {filename} in progress (never started, expired or cancelled); "
                       "start again with the chunk at byte 0")

    # ------------------------------------------------------------------------------------------ the bucket

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
            return head
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def _owner(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else head.get("Metadata", {}).get(UPLOAD_ID_META)

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            objects.extend(page.get("Contents", []))
        return objects

    def _visible_bytes(self) -> int:
        """Bytes of every object under the root outside the staging area (delivered or dropped there)."""
        base = self.s3root.key("")
        base = f"{base}/" if base else ""
        hidden = f"{base}{STAGING}/"
        return sum(int(o["Size"]) for o in self._list(base) if not o["Key"].startswith(hidden))

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _drop_objects(self, upload_id: str) -> None:
        self._delete([o["Key"] for o in self._list(self.s3root.key(STAGING, upload_id) + "/")])

    def sweep(self) -> None:
        """Expire abandoned uploads, finish stopped deliveries, delete chunk objects nobody knows any more."""
        for row in self.rows.all():
            self._settle(row)
        known = self.rows.known_ids()
        staging = self.s3root.key(STAGING) + "/"
        cutoff = time.time() - self.limits.staged_ttl_s
        orphans = [o["Key"] for o in self._list(staging)
                   if o["Key"][len(staging):].split("/", 1)[0] not in known and o["LastModified"].timestamp() < cutoff]
        self._delete(orphans)
