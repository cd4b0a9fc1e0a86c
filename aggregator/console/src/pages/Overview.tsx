import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import { type AlertEntry, getJson, graphql, proxyUrl } from "../api";
import { ErrorBox } from "../components/Unavailable";
import { applyRun, dismiss, type LiveEvent, liveLabel, mergeRun, NO_NOTICES, type Notice, type RunNotices,
  seedNotices, useLiveEvents } from "../live";

const DAYS = 14;

interface Run {
  runId: string;
  jobName: string;
  status: string;
  startTime: number | null;
  creationTime: number;
}

const RUNS = `query ConsoleRuns($after: Float) {
  runsOrError(filter: {createdAfter: $after}, limit: 1000) {
    __typename
    ... on Runs { results { runId jobName status startTime creationTime } }
    ... on PythonError { message }
  }
}`;

const CHECKS = `query ConsoleChecks {
  assetNodes {
    assetKey { path }
    groupName
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name executionForLatestMaterialization { status runId } } }
    }
  }
}`;

interface CheckNode {
  assetKey: { path: string[] };
  groupName: string | null;
  assetChecksOrError: { __typename: string; checks?: { name: string;
    executionForLatestMaterialization: { status: string; runId: string } | null }[] };
}

const FAILED = new Set(["FAILURE", "CANCELED"]);

export function runsPerDay(runs: Run[], now: Date = new Date()): Record<string, string | number>[] {
  const days: Record<string, Record<string, string | number>> = {};
  for (let i = DAYS - 1; i >= 0; i--) {
    const d = new Date(now.getTime() - i * 86_400_000).toISOString().slice(0, 10);
    days[d] = { day: d, succeeded: 0, failed: 0 };
  }
  for (const r of runs) {
    const d = new Date(r.creationTime * 1000).toISOString().slice(0, 10);
    const slot = days[d];
    if (!slot) continue;
    if (r.status === "SUCCESS") slot.succeeded = Number(slot.succeeded) + 1;
    else if (FAILED.has(r.status)) slot.failed = Number(slot.failed) + 1;
  }
  return Object.values(days);
}

const pipelineOf = (jobName: string) => jobName.replace(/_job$/, "");

export default function Overview() {
  const after = Math.floor(Date.now() / 1000) - DAYS * 86_400;
  const queryClient = useQueryClient();
  const [notices, setNotices] = useState<RunNotices>(NO_NOTICES);
  const onRun = (event: LiveEvent) => {
    queryClient.setQueryData<Run[]>(["overview-runs"], (old) => (old ? mergeRun(old, event) : old));
    setNotices((state) => applyRun(state, event));
  };
  const live = useLiveEvents("topics=runs", onRun,
    () => void queryClient.invalidateQueries({ queryKey: ["overview-runs"] }));
  const runs = useQuery({
    queryKey: ["overview-runs"],
    // Live: the stream updates the list; a slow refetch still catches what a stream cannot (deleted runs).
    refetchInterval: live === "live" ? 120_000 : 15_000,
    queryFn: async () => {
      const data = await graphql<{ runsOrError: { __typename: string; results?: Run[]; message?: string } }>(RUNS,
        { after });
      if (!data.runsOrError.results) throw new Error(data.runsOrError.message ?? data.runsOrError.__typename);
      return data.runsOrError.results;
    },
  });
  const checks = useQuery({
    queryKey: ["overview-checks"],
    refetchInterval: 30_000,
    queryFn: async () => (await graphql<{ assetNodes: CheckNode[] }>(CHECKS)).assetNodes,
  });
  const alerts = useQuery({ queryKey: ["alerts-history", 10], refetchInterval: 30_000,
    queryFn: () => getJson<AlertEntry[]>("api/alerts/history?limit=10") });

  // What each pipeline's last finished run was when the page loaded: a success after a failure seen only
  // there is a recovery too. Statuses the stream brought already win.
  const seeded = useRef(false);
  useEffect(() => {
    if (seeded.current || !runs.data) return;
    seeded.current = true;
    const seed = seedNotices(runs.data.map((r) => ({ pipeline: pipelineOf(r.jobName), status: r.status,
      time: r.creationTime })));
    setNotices((state) => ({ ...state, last: { ...seed.last, ...state.last } }));
  }, [runs.data]);

  const pipelines = new Map<string, Run[]>();
  for (const r of runs.data ?? []) {
    const name = pipelineOf(r.jobName);
    pipelines.set(name, [...(pipelines.get(name) ?? []), r]);
  }
  const failing = (checks.data ?? []).flatMap((n) =>
    (n.assetChecksOrError.checks ?? [])
      .filter((c) => ["FAILED", "EXECUTION_FAILED"].includes(c.executionForLatestMaterialization?.status ?? ""))
      .map((c) => ({ asset: n.assetKey.path.join("/"), check: c.name, run: c.executionForLatestMaterialization!.runId,
        status: c.executionForLatestMaterialization!.status })));
  return (
    <section>
      <h1>Overview</h1>
      <p className="note">Runs of the last {DAYS} days per pipeline, failing checks and recent alerts.{" "}
        <span data-testid="live-state" data-state={live}>{liveLabel(live)}</span></p>
      <Notices notices={notices.notices} onDismiss={(key) => setNotices((state) => dismiss(state, key))} />
      <ErrorBox error={runs.error} title="Could not load runs" />
      {runs.isPending ? <p role="status">Loading runs…</p> : null}
      {runs.data && pipelines.size === 0 ? (
        <p>No run in the last {DAYS} days. Launch one from the <a href={proxyUrl("jobs")}>Dagster UI</a> or upload a file.</p>
      ) : null}
      <div className="grid2">
        {[...pipelines.entries()].sort().map(([name, list]) => (
          <div className="card" key={name}>
            <h2>{name}</h2>
            <p className="note">
              {list.length} runs · {list.filter((r) => r.status === "SUCCESS").length} succeeded ·{" "}
              {list.filter((r) => FAILED.has(r.status)).length} failed or canceled ·{" "}
              <a href={proxyUrl(`runs?q[0]=job:${encodeURIComponent(list[0].jobName)}`)}>runs in Dagster</a>
            </p>
            <ResponsiveContainer width="100%" height={180}>
              <BarChart data={runsPerDay(list)}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="day" tickFormatter={(d: string) => d.slice(5)} />
                <YAxis allowDecimals={false} />
                <Tooltip />
                <Legend />
                <Bar dataKey="succeeded" stackId="a" fill="#146c2e" isAnimationActive={false} />
                <Bar dataKey="failed" stackId="a" fill="#b3261e" isAnimationActive={false} />
              </BarChart>
            </ResponsiveContainer>
          </div>
        ))}
      </div>
      <div className="grid2">
        <div className="card">
          <h2>Failing checks</h2>
          <ErrorBox error={checks.error} title="Could not load checks" />
          {checks.data && failing.length === 0 ? <p>No check is failing.</p> : null}
          <ul>
            {failing.map((f) => (
              <li key={`${f.asset}:${f.check}`}>
                <a href={proxyUrl(`assets/${f.asset}?view=checks`)}>{f.asset}</a> · {f.check} ({f.status.toLowerCase()}) ·{" "}
                <a href={proxyUrl(`runs/${f.run}`)}>run</a>
              </li>
            ))}
          </ul>
        </div>
        <div className="card">
          <h2>Recent alerts</h2>
          <ErrorBox error={alerts.error} title="Could not load alerts" />
          {alerts.data && alerts.data.length === 0 ? <p>No alert has been sent.</p> : null}
          <ul>
            {alerts.data?.map((a) => (
              <li key={a.id}>
                {a.at.replace("T", " ").slice(0, 16)} · {a.status} · {a.title}
                {a.run_id ? <> · <a href={proxyUrl(`runs/${a.run_id}`)}>run</a></> : null}
              </li>
            ))}
          </ul>
        </div>
      </div>
    </section>
  );
}

function Notices({ notices, onDismiss }: { notices: Notice[]; onDismiss: (key: string) => void }) {
  // The live region exists before any notice, so screen readers announce each one as it is added.
  return (
    <div className="toasts" role="status" aria-live="polite" aria-label="Run notifications">
      {notices.map((n) => (
        <div key={n.key} className={`toast ${n.kind}`} data-testid="run-notice">
          <strong>{n.kind === "failed" ? "Run failed" : "Recovered"}</strong> {n.message} ·{" "}
          <Link to={`/logs?run_id=${encodeURIComponent(n.runId)}`}>logs</Link> ·{" "}
          <a href={proxyUrl(`runs/${n.runId}`)}>run in Dagster</a>{" "}
          <button type="button" onClick={() => onDismiss(n.key)} aria-label={`Dismiss: ${n.message}`}>×</button>
        </div>
      ))}
    </div>
  );
}
