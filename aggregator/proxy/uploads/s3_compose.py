"""Joining an upload's staged chunk objects into its final object with one multipart upload, memory bounded.

A chunk of at least 5 MiB (S3's smallest part but the last) while nothing is buffered becomes a part by
`UploadPartCopy`: the server copies it, no byte passes through the proxy. Smaller chunks are streamed through a
buffer of at most `PART_BYTES` plus one read block and sent as parts of `PART_BYTES`, so memory stays flat
whatever the file's size. Completing the multipart upload is what makes the object appear, whole and at once;
it is sent with `If-None-Match: *`, so it never replaces an object of that name (S3 conditional writes,
which AWS, MinIO and moto honour).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aggregator.proxy.uploads.s3_rows import ChunkRow

log = logging.getLogger(__name__)

MIN_PART = 5 << 20  # S3's smallest part size, except for the last part
PART_BYTES = 8 << 20  # parts made of small chunks are this large
READ_BYTES = 1 << 20  # a chunk object is read this much at a time
UPLOAD_ID_META = "aggregator-upload-id"  # the object's metadata names the upload that made it


class Exists(Exception):
    """An object is already at the final key (someone else's file, or ours from before a crash)."""


def compose(client: Any, bucket: str, key: str, upload_id: str, chunks: list[ChunkRow],
            keep_claim: Callable[[], bool]) -> None:
    """Write the chunks, in order, as the object `key`; `keep_claim()` is asked between parts and a False
    answer (another replica took the delivery over) abandons the attempt."""
    created = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata={UPLOAD_ID_META: upload_id})
    mp = created["UploadId"]
    parts: list[dict[str, Any]] = []
    buffer = bytearray()

    def send(data: bytes) -> None:
        number = len(parts) + 1
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=mp, PartNumber=number, Body=data)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})

    try:
        for index, chunk in enumerate(chunks):
            if not keep_claim():
                raise RuntimeError("another replica took over this delivery")
            last = index == len(chunks) - 1
            if not buffer and (chunk.size >= MIN_PART or (last and not parts)):
                number = len(parts) + 1
                copied = client.upload_part_copy(Bucket=bucket, Key=key, UploadId=mp, PartNumber=number,
                                                 CopySource={"Bucket": bucket, "Key": chunk.key})
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
                continue
            body = client.get_object(Bucket=bucket, Key=chunk.key)["Body"]
            try:
                for block in body.iter_chunks(READ_BYTES):
                    buffer += block
                    if len(buffer) >= PART_BYTES:
                        send(bytes(memoryview(buffer)[:PART_BYTES]))  # one copy, not two
                        del buffer[:PART_BYTES]
            finally:
                body.close()
        if buffer or not parts:
            send(bytes(buffer))
        try:
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp, IfNoneMatch="*",
                                             MultipartUpload={"Parts": parts})
        except client.exceptions.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise Exists(key) from exc
            raise
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=mp)
        except client.exceptions.ClientError as exc:  # the original error is the one to report
            log.warning("multipart upload for %s not aborted (%s); a bucket lifecycle rule removes it", key,
                        _code(exc))
        raise


def _code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code") or getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode"))
