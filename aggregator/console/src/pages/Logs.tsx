import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";

import { getJson, type LogPage, type PipelineSummary, proxyUrl } from "../api";
import { ErrorBox } from "../components/Unavailable";
import { useMe } from "../me";

const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

interface Filters {
  pipeline: string;
  run_id: string;
  level: string;
  text: string;
  since: string;
  until: string;
}

const EMPTY: Filters = { pipeline: "", run_id: "", level: "", text: "", since: "", until: "" };

function params(f: Filters, cursor: string | null): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (!v) continue;
    // datetime-local has no zone: the user's local time, sent as UTC.
    p.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  p.set("limit", "100");
  if (cursor) p.set("cursor", cursor);
  return p.toString();
}

export default function Logs() {
  const me = useMe();
  const pipelines = useQuery({ queryKey: ["pipelines"], queryFn: () => getJson<PipelineSummary[]>("api/pipelines") });
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters | null>(null);
  const scoped = me.data?.scope != null;
  const search = useInfiniteQuery({
    queryKey: ["logs", filters],
    enabled: filters !== null,
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => getJson<LogPage>(`api/logs?${params(filters!, pageParam)}`),
    getNextPageParam: (last) => last.next_cursor,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilters({ ...draft });
  };
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });
  const lines = search.data?.pages.flatMap((p) => p.lines) ?? [];
  return (
    <section>
      <h1>Logs</h1>
      <p className="note">Search the event logs of every run, newest first.{scoped ? " Your grant is scoped: pick one of its pipelines." : ""}</p>
      <form onSubmit={submit} className="card" aria-label="Log search">
        <div className="row">
          <label>
            Pipeline
            <br />
            <select value={draft.pipeline} onChange={set("pipeline")} required={scoped}>
              <option value="">{scoped ? "(choose)" : "All pipelines"}</option>
              {pipelines.data?.filter((p) => p.in_scope).map((p) => (
                <option key={p.name} value={p.name}>{p.name}</option>
              ))}
            </select>
          </label>
          <label>
            Run id
            <br />
            <input value={draft.run_id} onChange={set("run_id")} size={36} />
          </label>
          <label>
            Lowest level
            <br />
            <select value={draft.level} onChange={set("level")}>
              <option value="">Any</option>
              {LEVELS.map((l) => <option key={l} value={l}>{l}</option>)}
            </select>
          </label>
          <label>
            Text
            <br />
            <input type="search" value={draft.text} onChange={set("text")} maxLength={200} />
          </label>
          <label>
            From
            <br />
            <input type="datetime-local" value={draft.since} onChange={set("since")} />
          </label>
          <label>
            Until
            <br />
            <input type="datetime-local" value={draft.until} onChange={set("until")} />
          </label>
          <button type="submit" className="primary">Search</button>
        </div>
      </form>
      <ErrorBox error={search.error} title="Search failed" />
      {filters === null ? <p>Set filters and press Search (no filter: the latest lines of all runs).</p> : null}
      {search.isFetching && !search.isFetchingNextPage ? <p role="status">Searching…</p> : null}
      {filters !== null && search.isSuccess && lines.length === 0 ? (
        <p>No log line matches. Widen the time range or clear the text.</p>
      ) : null}
      {lines.length > 0 ? (
        <table data-testid="log-results">
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Level</th>
              <th scope="col">Run</th>
              <th scope="col">Step</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {lines.map((l) => (
              <tr key={`${l.run_id}:${l.storage_id}`}>
                <td>{l.time.replace("T", " ").slice(0, 19)}</td>
                <td>{l.level}</td>
                <td>
                  <a href={proxyUrl(`runs/${l.run_id}`)} title="Open the run in the Dagster UI">{l.run_id.slice(0, 8)}</a>
                  {l.job_name ? <div className="note">{l.job_name}</div> : null}
                </td>
                <td>{l.step_key ?? ""}</td>
                <td>
                  {l.message}
                  {l.error ? <pre className="note">{l.error}</pre> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {search.hasNextPage ? (
        <button type="button" onClick={() => search.fetchNextPage()} disabled={search.isFetchingNextPage}>
          {search.isFetchingNextPage ? "Loading…" : "Older lines"}
        </button>
      ) : null}
    </section>
  );
}
