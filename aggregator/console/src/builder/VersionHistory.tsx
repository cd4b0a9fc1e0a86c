// The builder's version history: who wrote each version and when, a line diff of a chosen version against the
// current file, and a rollback (a new version with the old content, sent with If-Match after a confirmation).
import { useMutation, useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";

import { type Ability, ApiError, getJson, request } from "../api";
import { ErrorBox } from "../components/Unavailable";
import { changeCount, foldUnchanged, lineDiff, type VersionInfo, when } from "./history";

export interface VersionHistoryProps {
  name: string;
  /** The file as the server holds it now (not the unsaved draft). */
  current: string;
  etag: string;
  rollback: Ability;
  dirty: boolean;
  onRolledBack: () => Promise<void>;
}

export function VersionHistory({ name, current, etag, rollback, dirty, onRolledBack }: VersionHistoryProps) {
  // The ETag is part of the key: a save or a rollback changes it, and the list is fetched again.
  const versions = useQuery({ queryKey: ["versions", name, etag],
    queryFn: () => getJson<VersionInfo[]>(`api/pipelines/${encodeURIComponent(name)}/versions`) });
  const [chosen, setChosen] = useState<number | null>(null);
  const [confirming, setConfirming] = useState(false);
  const picked = versions.data?.find((v) => v.version === chosen);

  const undo = useMutation({
    mutationFn: async (version: number) => {
      const response = await request(`api/pipelines/${encodeURIComponent(name)}/versions/${version}/rollback`,
        { method: "POST", headers: { "if-match": etag } });
      return { from: version, result: (await response.json()) as { version: number } };
    },
    onSuccess: async () => {
      setConfirming(false);
      await onRolledBack();
    },
    onError: () => setConfirming(false),
  });

  const rows = useMemo(() => (picked?.yaml != null ? lineDiff(picked.yaml, current) : null), [picked, current]);
  const counts = rows ? changeCount(rows) : null;
  const identical = counts !== null && counts.added === 0 && counts.removed === 0;
  const choose = (v: number) => {
    setChosen(v);
    setConfirming(false);
    undo.reset();
  };

  return (
    <section className="history" aria-labelledby="history-heading" data-testid="version-history">
      <h2 id="history-heading">Version history</h2>
      {!rollback.allowed ? (
        <p className="unavailable" role="note">Rolling back is not available to you: {rollback.reason}.</p>
      ) : null}
      {versions.isLoading ? <p role="status">Loading the history…</p> : null}
      <ErrorBox error={versions.error} title="Could not load the history" />
      {versions.data?.length === 0 ? (
        <p>No versions yet: this file has not been written through the Console or the API. Saving it makes version 1.</p>
      ) : null}
      {versions.data?.length ? (
        <table className="versions">
          <caption className="hint">Newest first. Pick a version to compare it with the current file.</caption>
          <thead>
            <tr><th scope="col">Version</th><th scope="col">Change</th><th scope="col">By</th><th scope="col">When</th><th scope="col"><span className="sr-only">Compare</span></th></tr>
          </thead>
          <tbody>
            {versions.data.map((v) => (
              <tr key={v.version} className={v.version === chosen ? "chosen" : undefined}>
                <td>{v.version}</td>
                <td>{v.action}</td>
                <td>{v.username}</td>
                <td><time dateTime={new Date(v.ts * 1000).toISOString()}>{when(v.ts)}</time></td>
                <td>
                  <button type="button" aria-pressed={v.version === chosen} onClick={() => choose(v.version)}>
                    Compare version {v.version}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {picked ? (
        <div className="version-diff">
          <h3>Version {picked.version} → current file</h3>
          {picked.yaml == null ? (
            <p>Version {picked.version} deleted the file: there is nothing to compare or roll back to.</p>
          ) : identical ? (
            <p role="status">Version {picked.version} is identical to the current file.</p>
          ) : (
            <>
              <p className="hint" data-testid="diff-summary">
                Rolling back removes the {counts!.added} line(s) marked + and brings back the {counts!.removed} line(s) marked −.
              </p>
              <DiffView rows={rows!} />
            </>
          )}
          {picked.yaml != null && !identical ? (
            confirming ? (
              <div className="confirm" role="group" aria-label="Confirm the rollback">
                <p>
                  Version {picked.version} becomes the current file as a new version; the history keeps everything.
                  {dirty ? " Your unsaved edits in the graph and the YAML view are discarded." : ""}
                </p>
                <button type="button" className="primary" disabled={undo.isPending} onClick={() => undo.mutate(picked.version)}>
                  {undo.isPending ? "Rolling back…" : `Confirm rollback to version ${picked.version}`}
                </button>{" "}
                <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
              </div>
            ) : (
              <button type="button" disabled={!rollback.allowed} onClick={() => setConfirming(true)}
                title={rollback.allowed ? undefined : rollback.reason ?? undefined}>
                Roll back to version {picked.version}…
              </button>
            )
          ) : null}
        </div>
      ) : null}
      {undo.isSuccess ? (
        <p role="status" data-testid="rollback-result">
          Rolled back to version {undo.data.from}: now version {undo.data.result.version}.
        </p>
      ) : null}
      {undo.error instanceof ApiError && undo.error.status === 412 ? (
        <p className="error" role="alert">
          <strong>Conflict (412):</strong> the pipeline changed after you opened it. Reload it to see the newest
          version before rolling back.
        </p>
      ) : (
        <ErrorBox error={undo.error} title="Rollback failed" />
      )}
    </section>
  );
}

function DiffView({ rows }: { rows: ReturnType<typeof lineDiff> }) {
  const folded = foldUnchanged(rows);
  return (
    <pre className="diff" data-testid="version-diff">
      {folded.map((r, i) =>
        r.kind === "fold" ? (
          <span key={i} className="diff-fold">{`   … ${r.hidden} unchanged line(s)\n`}</span>
        ) : (
          <span key={i} className={`diff-${r.kind}`}>
            {r.kind === "added" ? "+ " : r.kind === "removed" ? "− " : "  "}
            {r.text}
            {"\n"}
          </span>
        ),
      )}
    </pre>
  );
}
