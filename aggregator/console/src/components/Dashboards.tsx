// Dashboards: named grids of the user's saved queries, each tile run afresh (under the grant of whoever looks
// at it now, as `POST /api/query` checks it) and drawn with the tile's chart, else the query's, else the
// automatic choice.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, lazy, Suspense, useState } from "react";

import { type Dashboard, type DashboardItem, getJson, type QueryResult, type SavedChart,
  type SavedQuery } from "../api";
import { type ChartChoice, chooseChart } from "../chart";
import { ResultTable } from "./ResultTable";
import { ErrorBox } from "./Unavailable";

const ResultChart = lazy(() => import("./ResultChart").then((m) => ({ default: m.ResultChart })));

/** What to draw for a result: a chart, or the table (`kind: table`, or nothing chartable). */
export function drawnAs(chart: SavedChart | null, result: QueryResult): ChartChoice | null {
  if (chart?.kind === "table") return null;
  if (chart && chart.x && chart.ys.length && chart.ys.every((y) => result.columns.includes(y))
      && result.columns.includes(chart.x)) return { kind: chart.kind, x: chart.x, ys: chart.ys };
  return chooseChart(result.columns, result.rows);
}

function Tile({ item, query, onRemove }: { item: DashboardItem; query: SavedQuery | undefined; onRemove: () => void }) {
  const run = useQuery({
    queryKey: ["tile", query?.sql, query?.row_limit],
    enabled: query !== undefined,
    queryFn: () => getJson<QueryResult>("api/query", { method: "POST",
      body: { sql: query!.sql, row_limit: query!.row_limit, format: "json" } }),
  });
  const name = query?.name ?? item.query_id;
  const choice = run.data ? drawnAs(item.chart ?? query?.chart ?? null, run.data) : null;
  return (
    <article className="card" data-testid="dashboard-tile" aria-label={name}>
      <div className="row">
        <h3>{name}</h3>
        <button type="button" onClick={onRemove} aria-label={`Remove ${name} from the dashboard`}>Remove</button>
      </div>
      {query === undefined ? <p className="unavailable">This saved query no longer exists.</p> : null}
      <ErrorBox error={run.error} title="Query refused" />
      {run.isPending && query ? <p role="status">Running…</p> : null}
      {run.data && choice ? (
        <Suspense fallback={<p role="status">Loading chart…</p>}>
          <ResultChart columns={run.data.columns} rows={run.data.rows} choice={choice} />
        </Suspense>
      ) : run.data ? <ResultTable columns={run.data.columns} rows={run.data.rows} /> : null}
    </article>
  );
}

export function Dashboards({ saved, current }: { saved: SavedQuery[]; current: DashboardItem | null }) {
  const client = useQueryClient();
  const boards = useQuery({ queryKey: ["dashboards"], queryFn: () => getJson<Dashboard[]>("api/dashboards") });
  const [selected, setSelected] = useState<string | null>(null);
  const [name, setName] = useState("");
  const board = boards.data?.find((d) => d.id === selected) ?? boards.data?.[0];
  const changed = (d: Dashboard) => {
    client.setQueryData<Dashboard[]>(["dashboards"], (old) =>
      [...(old ?? []).filter((o) => o.id !== d.id), d].sort((a, b) => a.name.localeCompare(b.name)));
    setSelected(d.id);
  };
  const create = useMutation({
    mutationFn: (n: string) => getJson<Dashboard>("api/dashboards", { method: "POST", body: { name: n, items: [] } }),
    onSuccess: (d) => {
      changed(d);
      setName("");
    },
  });
  const update = useMutation({
    mutationFn: (d: Dashboard) => getJson<Dashboard>(`api/dashboards/${d.id}`, { method: "PUT",
      body: { name: d.name, items: d.items } }),
    onSuccess: changed,
  });
  const remove = useMutation({
    mutationFn: (d: Dashboard) => getJson<Dashboard[]>(`api/dashboards/${d.id}`, { method: "DELETE" }),
    onSuccess: (left) => {
      client.setQueryData(["dashboards"], left);
      setSelected(null);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (name.trim()) create.mutate(name.trim());
  };
  return (
    <section className="card" aria-labelledby="dashboards-heading">
      <h2 id="dashboards-heading">Dashboards</h2>
      <ErrorBox error={boards.error} title="Could not list dashboards" />
      <ErrorBox error={create.error ?? update.error ?? remove.error} title="Dashboard not saved" />
      <div className="row">
        <form onSubmit={submit} className="row" aria-label="Create a dashboard">
          <label>
            New dashboard name
            <br />
            <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
          </label>
          <button type="submit" disabled={!name.trim() || create.isPending}>Create dashboard</button>
        </form>
        {boards.data?.length ? (
          <>
            <label>
              Dashboard
              <br />
              <select value={board?.id ?? ""} onChange={(e) => setSelected(e.target.value)}>
                {boards.data.map((d) => <option key={d.id} value={d.id}>{d.name}</option>)}
              </select>
            </label>
            <button type="button" disabled={!current || !board || update.isPending}
              title={current ? undefined : "Save or open a query first"}
              onClick={() => board && current && update.mutate({ ...board, items: [...board.items, current] })}>
              Add query to dashboard
            </button>
            <button type="button" disabled={!board || remove.isPending}
              onClick={() => board && window.confirm(`Delete dashboard ${board.name}? Its queries stay saved.`)
                && remove.mutate(board)}>
              Delete dashboard
            </button>
          </>
        ) : null}
      </div>
      {board ? (
        board.items.length ? (
          <div className="dashboard-grid" data-testid="dashboard-grid">
            {board.items.map((item, i) => (
              <Tile key={`${item.query_id}-${i}`} item={item} query={saved.find((q) => q.id === item.query_id)}
                onRemove={() => update.mutate({ ...board, items: board.items.filter((_, j) => j !== i) })} />
            ))}
          </div>
        ) : <p>{board.name} is empty: open or save a query, then add it.</p>
      ) : boards.data ? <p>No dashboard yet.</p> : null}
    </section>
  );
}
