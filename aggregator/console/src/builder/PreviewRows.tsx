// "Preview rows" at a source or transform node: the first rows as the worker reads them (POST
// .../sources/{source}/preview, .../transforms/{transform}/preview), in a table, with progress while the worker
// reads and the error in place when it cannot (a 503 says that no worker is there, which no retry will change).
import { useMutation } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";

import { type Ability, ApiError, getJson } from "../api";
import { ErrorBox } from "../components/Unavailable";

export interface Preview {
  columns: Record<string, string>;
  rows: unknown[][];
  truncated: boolean;
}

export interface PreviewRowsProps {
  pipeline: string;
  kind: "source" | "transform";
  name: string;
  ability: Ability;
  /** The file has unsaved edits: the worker reads the saved spec, not them. */
  unsaved: boolean;
}

export const SOURCE_ROWS = 20;
export const TRANSFORM_SOURCE_ROWS = 100;

function cell(value: unknown): string {
  if (value === null || value === undefined) return "∅";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function PreviewRows({ pipeline, kind, name, ability, unsaved }: PreviewRowsProps) {
  const abort = useRef<AbortController | null>(null);
  const [elapsed, setElapsed] = useState(0);
  const path = `api/pipelines/${encodeURIComponent(pipeline)}/${kind}s/${encodeURIComponent(name)}/preview`;
  const preview = useMutation({
    mutationFn: () => {
      abort.current = new AbortController();
      const body = kind === "source" ? { limit: SOURCE_ROWS } : { source_rows: TRANSFORM_SOURCE_ROWS, limit: SOURCE_ROWS };
      return getJson<Preview>(path, { method: "POST", body, signal: abort.current.signal });
    },
  });
  // A new node in the panel: the last node's rows (or a request still running for it) are not this one's.
  useEffect(() => {
    preview.reset();
    return () => abort.current?.abort();
  }, [pipeline, kind, name]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (!preview.isPending) return;
    setElapsed(0);
    const started = Date.now();
    const timer = window.setInterval(() => setElapsed(Math.round((Date.now() - started) / 1000)), 1000);
    return () => window.clearInterval(timer);
  }, [preview.isPending]);

  const error = preview.error;
  const aborted = error instanceof DOMException && error.name === "AbortError";
  const columns = preview.data ? Object.entries(preview.data.columns) : [];
  return (
    <section className="preview" aria-label={`Preview of ${kind} ${name}`} data-testid="node-preview">
      <h3>Preview rows</h3>
      {!ability.allowed ? (
        <p className="unavailable" role="note">Previewing is not available to you: {ability.reason}.</p>
      ) : (
        <>
          <p className="hint">
            {kind === "source" ? `The stream's first ${SOURCE_ROWS} rows` : `The transform over the first ${TRANSFORM_SOURCE_ROWS} rows of each upstream source`},
            read by the worker; nothing is written.{unsaved ? " It reads the saved spec: save to preview your edits." : ""}
          </p>
          <button type="button" disabled={preview.isPending} onClick={() => preview.mutate()}>
            {preview.data ? "Preview again" : "Preview rows"}
          </button>
          {preview.isPending ? (
            <>
              {" "}<button type="button" onClick={() => abort.current?.abort()}>Cancel</button>
              <p role="status">
                <progress aria-label="Reading rows" /> Reading rows in the worker… {elapsed ? `${elapsed} s` : ""}
              </p>
            </>
          ) : null}
        </>
      )}
      {aborted ? <p role="status">Preview cancelled.</p> : null}
      {error instanceof ApiError && error.status === 503 ? (
        <div className="error" role="alert" data-testid="preview-error">
          <strong>No worker (503):</strong> {error.detail}. Previews run only in the worker, never in the proxy:{" "}
          <code>aggregator dev</code> starts one; a deployment runs <code>aggregator worker</code> and gives the proxy
          its address and token (AGGREGATOR_WORKER_URL, AGGREGATOR_WORKER_TOKEN).
        </div>
      ) : error && !aborted ? (
        <div data-testid="preview-error"><ErrorBox error={error} title="Preview failed" /></div>
      ) : null}
      {preview.data ? (
        preview.data.rows.length === 0 ? (
          <p role="status" data-testid="preview-result">No rows: the {kind} is empty.</p>
        ) : (
          <div className="preview-scroll" data-testid="preview-result" tabIndex={0} role="region" aria-label="Preview rows table">
            <table className="preview-rows">
              <caption className="hint">
                {preview.data.rows.length} row(s){preview.data.truncated ? ", and there are more" : ""}; sensitive columns masked.
              </caption>
              <thead>
                <tr>{columns.map(([c, t]) => <th key={c} scope="col">{c} <small>{t}</small></th>)}</tr>
              </thead>
              <tbody>
                {preview.data.rows.map((row, i) => (
                  <tr key={i}>{row.map((v, j) => <td key={j}>{cell(v)}</td>)}</tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
    </section>
  );
}
