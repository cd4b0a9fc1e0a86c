import { proxyUrl } from "../api";

export default function Builder() {
  return (
    <section>
      <h1>Pipeline builder</h1>
      <p className="unavailable" role="note">
        The visual pipeline builder is coming; it is not part of the Console yet.
      </p>
      <p>
        Until then, pipelines are YAML specs (docs/pipelines.md), written through the management API with the same
        roles and validation: <code>GET</code>/<code>PUT /api/pipelines/&#123;name&#125;</code> (with{" "}
        <code>If-Match</code>), <code>POST /api/pipelines/validate</code> for <code>file:line: field: message</code>{" "}
        errors, and version history with rollback. The <a href={proxyUrl("api/openapi.json")}>OpenAPI document</a>{" "}
        lists every endpoint.
      </p>
    </section>
  );
}
