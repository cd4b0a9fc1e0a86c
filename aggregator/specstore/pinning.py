"""Pin a run to the spec revision its code location was loaded at, with Dagster's own mechanism.

The code server records the store revision and the digest of its files in the Definitions' reconstruction
metadata; Dagster keeps that with each run's execution plan and hands it to every process that reconstructs
the code location for the run (run worker, step process, Kubernetes run or step pod). Those load exactly that
revision from the store and refuse to run anything else (the digest must match), whichever machine they are on.
"""

from __future__ import annotations

import logging
from pathlib import Path

# Not re-exported at the top level of dagster 1.13; this is the module Dagster's own state-backed loaders use.
from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType
from sqlalchemy.exc import SQLAlchemyError

from aggregator.settings import Settings
from aggregator.specstore.current import current_snapshot, local_directory, open_spec_db
from aggregator.specstore.directory import read_directory
from aggregator.specstore.store import Snapshot, digest_of

log = logging.getLogger(__name__)
REVISION_KEY = "aggregator/spec_revision"
DIGEST_KEY = "aggregator/spec_digest"


class PinnedSpecsError(RuntimeError):
    """The revision a run was launched with cannot be loaded as it was."""


def pinned_texts(settings: Settings) -> tuple[dict[Path, str] | None, dict[str, str]]:
    """The spec texts to load in this process, and the reconstruction metadata that pins them (also handed to
    the load context: Dagster records the context's pending metadata with the repository, and that is what
    a run's execution plan carries to its run worker)."""
    context = DefinitionsLoadContext.get()
    texts, pin = _pinned(settings, context)
    for key, value in pin.items():
        context.add_to_pending_reconstruction_metadata(key, value)
    return texts, pin


def _pinned(settings: Settings, context: DefinitionsLoadContext) -> tuple[dict[Path, str] | None, dict[str, str]]:
    if context.load_type == DefinitionsLoadType.RECONSTRUCTION:
        recorded = context.reconstruction_metadata
        if REVISION_KEY in recorded:
            revision, digest = int(recorded[REVISION_KEY]), str(recorded[DIGEST_KEY])
            root = local_directory(settings)
            if root is not None and root.is_dir() and digest_of(read_directory(root)) == digest:
                # This process's own specs directory holds exactly the pinned files (a run pod with the
                # specs mounted as its code server had them): verified by digest, no database needed.
                return (Snapshot(revision, read_directory(root)).texts(settings.pipelines_dir),
                        {REVISION_KEY: str(revision), DIGEST_KEY: digest})
            pinned = load_revision(settings, revision, digest)
            return pinned.texts(settings.pipelines_dir), {REVISION_KEY: str(revision), DIGEST_KEY: digest}
        if recorded.get(DIGEST_KEY) == "files":
            return None, dict(recorded)  # the code server read a spec file named directly; so does the run
    try:
        snap = current_snapshot(settings)
    except (OSError, SQLAlchemyError) as exc:
        root = local_directory(settings)
        if root is None or not root.is_dir():
            raise
        # No reachable store (a read-only pod with no AGGREGATOR_SPECS_DB_URL): the mounted directory, pinned
        # by its digest; a run pod with the same mount loads it and verifies the digest.
        log.warning("spec store unavailable (%s); loading the specs directory %s", type(exc).__name__, root)
        snap = Snapshot(0, read_directory(root))
    if snap is None:
        return None, {DIGEST_KEY: "files"}
    return snap.texts(settings.pipelines_dir), {REVISION_KEY: str(snap.revision), DIGEST_KEY: snap.digest}


def load_revision(settings: Settings, revision: int, digest: str) -> Snapshot:
    """Revision `revision` of the store, verified against the digest the code server recorded."""
    try:
        snap = open_spec_db(settings).snapshot(revision)
    except LookupError as exc:
        raise PinnedSpecsError(f"this run was launched with spec store revision {revision}, which the store at "
                               f"{_where(settings)} does not have: {exc}") from exc
    if snap.digest != digest:
        raise PinnedSpecsError(f"spec store revision {revision} at {_where(settings)} is not the one this run was "
                               f"launched with (digest {snap.digest[:12]}, expected {digest[:12]}): the run "
                               "reads a different spec store than its code server (AGGREGATOR_SPECS_DB_URL)")
    return snap


def _where(settings: Settings) -> str:
    url = settings.spec_store_url
    return url.split("@")[-1] if "@" in url else url  # never the credentials


__all__ = ["DIGEST_KEY", "REVISION_KEY", "PinnedSpecsError", "load_revision", "local_directory", "pinned_texts"]
