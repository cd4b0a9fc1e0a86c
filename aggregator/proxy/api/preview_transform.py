"""`POST /api/pipelines/{name}/transforms/{transform}/preview`: a transform run over previewed source rows.

The worker does it (aggregator/worker/actions.py `preview_transform`): the upstream sources are previewed
(row limit, nothing read past it), loaded into a scratch SQLite database in a temporary directory, upstream
transforms are built there in dependency order, and the transform's SELECT (the same SQL the asset runs) is
read back, with every upstream's and the transform's `sensitive_columns` masked. Nothing touches the
warehouse, and nothing runs in the proxy. SQL written for PostgreSQL only (e.g. `::` casts) fails there
with a 409 naming the database error.
"""

from __future__ import annotations

from pydantic import Field

from aggregator.proxy.api.access import require
from aggregator.proxy.api.models import Strict
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.schema_routes import Preview
from aggregator.proxy.api.spec_scope import require_preview_grant
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.api.worker_client import WORKER_STATUSES
from aggregator.proxy.policy.rbac import Role


class TransformPreviewRequest(Strict):
    """Row limits of a transform preview."""

    source_rows: int = Field(100, ge=1, le=1000, description="Rows read from each upstream source.")
    limit: int = Field(20, ge=1, le=1000, description="Rows of the transform's result returned at most.")


def routes(api: ApiState) -> list[Route]:
    async def preview_transform_rows(req: ApiRequest) -> Preview:
        """Run a transform over previewed rows of its upstream sources (nothing is written anywhere)."""
        pipeline, transform = req.params["name"], req.params["transform"]
        body = req.body_as(TransformPreviewRequest)
        require(req.principal, Role.viewer, "preview_transform", [pipeline])
        # Every pipeline whose rows it reads must be in the previewer's grant (spec_scope.py).
        await api.services.run_io(lambda: require_preview_grant(req.principal, api.platform.pipelines_dir, pipeline,
                                                                transform, api.specs.texts()))
        answer = await api.worker.call("preview-transform", {
            "pipeline": pipeline, "transform": transform, "source_rows": body.source_rows, "limit": body.limit})
        return Preview.model_validate(answer)

    return [Route("POST", "/api/pipelines/{name}/transforms/{transform}/preview", preview_transform_rows,
                  "Preview a transform over sample rows", body=TransformPreviewRequest, response=Preview,
                  statuses=(415, *WORKER_STATUSES), reads=True)]
