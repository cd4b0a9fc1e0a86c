// Live events from the proxy (GET /api/events, server-sent events): a pure reducer that turns run status
// changes into notifications (a pipeline's run failed; the next success after a failure: it recovered), and a
// hook that keeps one EventSource open and says whether the page is live or back to polling.
import { useEffect, useRef, useState } from "react";

import { type LogLine, proxyUrl } from "./api";

export interface LiveLine extends LogLine {
  pipeline: string | null;
  status?: string; // run events only: the run's new status
}

export interface LiveEvent {
  id: string;
  kind: "run" | "log";
  data: LiveLine;
}

export interface Notice {
  key: string;
  kind: "failed" | "recovered";
  pipeline: string;
  runId: string;
  time: string;
  message: string;
}

export interface RunNotices {
  last: Record<string, "SUCCESS" | "FAILURE">; // the last finished run of each pipeline
  seen: Record<string, string>; // run id -> last status applied (replays and duplicates change nothing)
  notices: Notice[]; // newest first
}

export const NO_NOTICES: RunNotices = { last: {}, seen: {}, notices: [] };
export const MAX_NOTICES = 20;

/** What each pipeline's last finished run was, from the runs a page loaded (oldest first or any order). */
export function seedNotices(runs: { pipeline: string; status: string; time: number }[]): RunNotices {
  const last: RunNotices["last"] = {};
  for (const r of [...runs].sort((a, b) => a.time - b.time)) {
    if (r.status === "SUCCESS" || r.status === "FAILURE") last[r.pipeline] = r.status;
  }
  return { last, seen: {}, notices: [] };
}

/** The state after one run event: a failure is noticed; a success after a failure is a recovery. */
export function applyRun(state: RunNotices, event: LiveEvent): RunNotices {
  if (event.kind !== "run" || !event.data.status) return state;
  const { run_id: runId, status } = event.data;
  const pipeline = event.data.pipeline ?? event.data.job_name?.replace(/_job$/, "") ?? "";
  if (state.seen[runId] === status) return state;
  const seen = { ...state.seen, [runId]: status };
  if (status !== "SUCCESS" && status !== "FAILURE") return { ...state, seen };
  const before = state.last[pipeline];
  const last: RunNotices["last"] = { ...state.last, [pipeline]: status };
  let notice: Notice | null = null;
  if (status === "FAILURE") {
    notice = { key: `${runId}:failed`, kind: "failed", pipeline, runId, time: event.data.time,
      message: `${pipeline}: run ${runId.slice(0, 8)} failed` };
  } else if (before === "FAILURE") {
    notice = { key: `${runId}:recovered`, kind: "recovered", pipeline, runId, time: event.data.time,
      message: `${pipeline} recovered: run ${runId.slice(0, 8)} succeeded after a failure` };
  }
  const notices = notice ? [notice, ...state.notices].slice(0, MAX_NOTICES) : state.notices;
  return { last, seen, notices };
}

export function dismiss(state: RunNotices, key: string): RunNotices {
  return { ...state, notices: state.notices.filter((n) => n.key !== key) };
}

/** A run list with one status change merged in (a new run is added): what the page shows without a refetch. */
export function mergeRun<R extends { runId: string; jobName: string; status: string; creationTime: number;
  startTime: number | null }>(runs: R[], event: LiveEvent): R[] {
  if (event.kind !== "run" || !event.data.status) return runs;
  const { run_id: runId, status, timestamp } = event.data;
  if (runs.some((r) => r.runId === runId)) {
    return runs.map((r) => (r.runId === runId ? { ...r, status,
      startTime: r.startTime ?? (status === "STARTED" ? timestamp : null) } : r));
  }
  const added = { runId, jobName: event.data.job_name ?? "", status, creationTime: timestamp,
    startTime: status === "STARTED" ? timestamp : null } as R;
  return [added, ...runs];
}

/** Live lines first (newest first), then the searched ones, each line once. */
export function mergeLines(live: LogLine[], searched: LogLine[]): LogLine[] {
  const keys = new Set(live.map((l) => `${l.run_id}:${l.storage_id}`));
  return [...live, ...searched.filter((l) => !keys.has(`${l.run_id}:${l.storage_id}`))];
}

export type LiveState = "off" | "connecting" | "live" | "polling";

/** Keeps an EventSource on `api/events?<query>` while `query` is not null; `onEvent` gets each run/log event,
 * `onReset` runs when the proxy cannot say what was missed. When the stream drops the state is `polling` (the
 * page polls meanwhile) until the browser's reconnect succeeds; a refusal (429, 403) stays `polling`. */
export function useLiveEvents(query: string | null, onEvent: (event: LiveEvent) => void,
  onReset?: () => void): LiveState {
  const [state, setState] = useState<LiveState>(query === null ? "off" : "connecting");
  const handlers = useRef({ onEvent, onReset });
  handlers.current = { onEvent, onReset };
  useEffect(() => {
    if (query === null || typeof EventSource === "undefined") {
      setState(query === null ? "off" : "polling");
      return undefined;
    }
    setState("connecting");
    const source = new EventSource(proxyUrl(`api/events?${query}`), { withCredentials: true });
    const deliver = (kind: "run" | "log") => (e: MessageEvent<string>) => {
      handlers.current.onEvent({ id: e.lastEventId, kind, data: JSON.parse(e.data) as LiveLine });
    };
    source.addEventListener("run", deliver("run"));
    source.addEventListener("log", deliver("log"));
    source.addEventListener("reset", () => handlers.current.onReset?.());
    source.onopen = () => setState("live");
    // A dropped stream (or one the proxy ended: lifetime, draining) is reconnected by the browser with
    // Last-Event-ID; until then, and for good when it was refused, the page polls.
    source.onerror = () => setState("polling");
    return () => source.close();
  }, [query]);
  return state;
}

export function liveLabel(state: LiveState): string {
  return { off: "Live updates off; refreshed by polling.", connecting: "Connecting to live updates…",
    live: "Live: updates as runs change.", polling: "Live updates interrupted; polling until they are back." }[state];
}
