import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { type FormEvent, useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router-dom";

import { getJson, type LogLine, type LogPage, type PipelineSummary, proxyUrl } from "../api";
import { ErrorBox } from "../components/Unavailable";
import { liveLabel, mergeLines, useLiveEvents } from "../live";
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
const TAIL_MAX = 500; // live lines kept on the page

/** The filters a link names (`logs?run_id=...`, `logs?pipeline=...`), or null when it names none. */
function linked(search: URLSearchParams): Filters | null {
  const named = { ...EMPTY, pipeline: search.get("pipeline") ?? "", run_id: search.get("run_id") ?? "" };
  return named.pipeline || named.run_id ? named : null;
}

/** The live-event subscription of a search: the same filters, without its time range and paging. */
function tailQuery(f: Filters): string {
  const p = new URLSearchParams({ topics: "logs" });
  for (const k of ["pipeline", "run_id", "level", "text"] as const) if (f[k]) p.set(k, f[k]);
  return p.toString();
}

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
  const [searchParams] = useSearchParams();
  const [draft, setDraft] = useState<Filters>(() => linked(searchParams) ?? EMPTY);
  const [filters, setFilters] = useState<Filters | null>(() => linked(searchParams));
  const [tail, setTail] = useState(false);
  const [tailed, setTailed] = useState<LogLine[]>([]);
  useEffect(() => {
    // a link to another run's logs, followed from this page
    const named = linked(searchParams);
    if (named) {
      setDraft(named);
      setFilters(named);
    }
  }, [searchParams]);
  useEffect(() => setTailed([]), [filters]);
  const scoped = me.data?.scope != null;
  const live = useLiveEvents(tail && filters !== null ? tailQuery(filters) : null,
    (event) => setTailed((lines) => [event.data, ...lines].slice(0, TAIL_MAX)));
  const search = useInfiniteQuery({
    queryKey: ["logs", filters],
    enabled: filters !== null,
    // the tail dropped: look again every 5 s until it is back
    refetchInterval: tail && live === "polling" ? 5_000 : false,
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => getJson<LogPage>(`api/logs?${params(filters!, pageParam)}`),
    getNextPageParam: (last) => last.next_cursor,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilters({ ...draft });
  };
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });
  const lines = mergeLines(tailed, search.data?.pages.flatMap((p) => p.lines) ?? []);
  const toggleTail = (on: boolean) => {
    setTail(on);
    if (on && filters === null) setFilters({ ...draft }); // tail what the form says
  };
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
          <label className="field inline">
            <input type="checkbox" checked={tail} onChange={(e) => toggleTail(e.target.checked)}
              disabled={scoped && !(filters?.pipeline || draft.pipeline)} />
            Live tail
          </label>
        </div>
        {tail ? <p className="note" data-testid="tail-state" data-state={live}>{liveLabel(live)} New lines appear
          on top.</p> : null}
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
                  <Link to={`/logs?run_id=${encodeURIComponent(l.run_id)}`} title="Every log line of this run">
                    {l.run_id.slice(0, 8)}</Link>{" "}
                  <a href={proxyUrl(`runs/${l.run_id}`)} title="Open the run in the Dagster UI">(Dagster)</a>
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
