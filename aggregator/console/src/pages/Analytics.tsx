import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, lazy, Suspense, useMemo, useRef, useState } from "react";

import { getJson, type QueryResult, request, type SavedChart, type SavedQuery, type TableInfo } from "../api";
import { type ChartChoice, chooseChart, columnKinds } from "../chart";
import { chartPng, chartSvg } from "../chartExport";
import { Dashboards } from "../components/Dashboards";
import { ResultTable } from "../components/ResultTable";
import { ErrorBox } from "../components/Unavailable";
import { saveBlob } from "../download";

// The chart library is loaded with the first chart, not with the page.
const ResultChart = lazy(() => import("../components/ResultChart").then((m) => ({ default: m.ResultChart })));

export default function Analytics() {
  const tables = useQuery({ queryKey: ["tables"], queryFn: () => getJson<TableInfo[]>("api/tables") });
  const [sql, setSql] = useState("");
  const [limit, setLimit] = useState(1000);
  const run = useMutation({
    mutationFn: (body: { sql: string; row_limit: number }) =>
      getJson<QueryResult>("api/query", { method: "POST", body: { ...body, format: "json" } }),
  });
  const [override, setOverride] = useState<Partial<ChartChoice> & { none?: boolean }>({});
  const result = run.data;
  const auto = useMemo(() => (result ? chooseChart(result.columns, result.rows) : null), [result]);
  const choice: ChartChoice | null = override.none ? null : auto || override.x ? {
    kind: override.kind ?? auto?.kind ?? "bar",
    x: override.x ?? auto?.x ?? result!.columns[0],
    ys: override.ys ?? auto?.ys ?? [],
  } : null;
  const kinds = useMemo(() => (result ? columnKinds(result.columns, result.rows) : null), [result]);
  const [exporting, setExporting] = useState<string | null>(null);
  const chartRef = useRef<HTMLDivElement>(null);
  const client = useQueryClient();
  const saved = useQuery({ queryKey: ["saved-queries"], queryFn: () => getJson<SavedQuery[]>("api/saved-queries") });
  const [openId, setOpenId] = useState<string | null>(null);
  const [name, setName] = useState("");
  // The chart as chosen on the page: null while it is the automatic choice, `table` for "No chart".
  const chart: SavedChart | null = override.none ? { kind: "table", x: null, ys: [] }
    : (override.kind || override.x || override.ys) && choice ? { kind: choice.kind, x: choice.x, ys: choice.ys } : null;
  const open = saved.data?.find((q) => q.id === openId);
  const save = useMutation({
    mutationFn: () => {
      const body = { name: name.trim(), sql, row_limit: limit, chart };
      // Saving under the name of the open query changes it; another name saves a new one.
      return open && open.name === body.name
        ? getJson<SavedQuery>(`api/saved-queries/${open.id}`, { method: "PUT", body })
        : getJson<SavedQuery>("api/saved-queries", { method: "POST", body });
    },
    onSuccess: (q) => {
      setOpenId(q.id);
      void client.invalidateQueries({ queryKey: ["saved-queries"] });
    },
  });
  const forget = useMutation({
    mutationFn: (q: SavedQuery) => getJson<SavedQuery[]>(`api/saved-queries/${q.id}`, { method: "DELETE" }),
    onSuccess: (left) => client.setQueryData(["saved-queries"], left),
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setOverride({});
    run.mutate({ sql, row_limit: limit });
  };
  const openQuery = (q: SavedQuery) => {
    setSql(q.sql);
    setLimit(q.row_limit);
    setName(q.name);
    setOpenId(q.id);
    setOverride(q.chart?.kind === "table" ? { none: true } : q.chart?.x
      ? { kind: q.chart.kind as ChartChoice["kind"], x: q.chart.x, ys: q.chart.ys } : {});
    run.mutate({ sql: q.sql, row_limit: q.row_limit });
  };
  const exportAs = async (format: "csv" | "parquet") => {
    // The server writes the file (formula-safe CSV cells, typed Parquet columns), from the same read-only query.
    setExporting("Exporting…");
    try {
      const response = await request("api/query", { method: "POST", body: { sql, row_limit: limit, format },
        headers: { accept: format === "csv" ? "text/csv" : "application/vnd.apache.parquet" } });
      saveBlob(await response.blob(), `query.${format}`);
      setExporting(null);
    } catch (err) {
      setExporting(`Export failed: ${(err as Error).message}`);
    }
  };
  const exportChart = async (format: "png" | "svg") => {
    try {
      const figure = chartRef.current?.querySelector("[data-testid=result-chart]");
      if (!figure) throw new Error("no chart is drawn yet");
      saveBlob(format === "svg" ? new Blob([chartSvg(figure).text], { type: "image/svg+xml" })
        : await chartPng(figure), `chart.${format}`);
      setExporting(null);
    } catch (err) {
      setExporting(`Chart export failed: ${(err as Error).message}`);
    }
  };
  return (
    <section>
      <h1>Analytics</h1>
      <p className="note">
        One read-only SELECT over the warehouse tables your grant may read (at most {limit.toLocaleString()} rows).
      </p>
      <div className="grid2">
        <form onSubmit={submit} className="card" aria-label="Query">
          <label htmlFor="sql">SQL</label>
          <textarea id="sql" rows={8} value={sql} onChange={(e) => setSql(e.target.value)} spellCheck={false}
            placeholder="SELECT region, SUM(revenue) AS revenue FROM sales_daily_sales GROUP BY region"
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e);
            }} />
          <div className="row">
            <label>
              Row limit
              <br />
              <input type="number" min={1} max={100000} value={limit} onChange={(e) => setLimit(Number(e.target.value))} />
            </label>
            <button type="submit" className="primary" disabled={!sql.trim() || run.isPending}>
              {run.isPending ? "Running…" : "Run query"}
            </button>
            <button type="button" onClick={() => exportAs("csv")} disabled={!sql.trim() || !result}>Export CSV</button>
            <button type="button" onClick={() => exportAs("parquet")} disabled={!sql.trim() || !result}>
              Export Parquet
            </button>
          </div>
          <div className="row">
            <label>
              Query name
              <br />
              <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
            </label>
            <button type="button" onClick={() => save.mutate()} disabled={!sql.trim() || !name.trim() || save.isPending}>
              {open && open.name === name.trim() ? "Update saved query" : "Save query"}
            </button>
          </div>
          <ErrorBox error={save.error} title="Query not saved" />
          {exporting ? <p role="status">{exporting}</p> : null}
          <p className="note">Ctrl+Enter runs the query.</p>
        </form>
        <div className="card">
          <h2>Tables you may read</h2>
          <ErrorBox error={tables.error} title="Could not list tables" />
          {tables.data && tables.data.length === 0 ? <p>No table yet: run a pipeline first.</p> : null}
          <ul>
            {tables.data?.map((t) => (
              <li key={t.table}>
                <button type="button" onClick={() => setSql(`SELECT * FROM ${t.table} LIMIT 100`)}
                  title={`${t.pipeline} / ${t.asset}`}>{t.table}</button>
              </li>
            ))}
          </ul>
          <h2>Your saved queries</h2>
          <ErrorBox error={saved.error ?? forget.error} title="Saved queries" />
          {saved.data && saved.data.length === 0 ? <p>None yet: name a query and save it.</p> : null}
          <ul>
            {saved.data?.map((q) => (
              <li key={q.id} className="row">
                <button type="button" onClick={() => openQuery(q)} aria-current={q.id === openId ? "true" : undefined}
                  title={q.sql}>{q.name}</button>
                <button type="button" aria-label={`Delete saved query ${q.name}`} disabled={forget.isPending}
                  onClick={() => window.confirm(`Delete saved query ${q.name}?`) && forget.mutate(q)}>Delete</button>
              </li>
            ))}
          </ul>
        </div>
      </div>
      <ErrorBox error={run.error} title="Query refused" />
      {result ? (
        <>
          {result.truncated ? <p className="unavailable">More rows exist than the row limit; the result is cut.</p> : null}
          <div className="card">
            <h2>Chart</h2>
            <div className="row">
              <label>
                Kind
                <br />
                <select value={override.none ? "none" : choice?.kind ?? "none"}
                  onChange={(e) => setOverride(e.target.value === "none" ? { none: true }
                    : { ...override, none: false, kind: e.target.value as ChartChoice["kind"],
                      x: choice?.x ?? result.columns[0], ys: choice?.ys ?? kinds?.numeric.slice(0, 1) })}>
                  <option value="none">No chart</option>
                  <option value="line">Line</option>
                  <option value="bar">Bar</option>
                </select>
              </label>
              <label>
                X axis
                <br />
                <select value={choice?.x ?? ""} disabled={!choice}
                  onChange={(e) => setOverride({ ...override, x: e.target.value, kind: choice?.kind, ys: choice?.ys })}>
                  {result.columns.map((c) => <option key={c} value={c}>{c}</option>)}
                </select>
              </label>
              <label>
                Values
                <br />
                <select value={choice?.ys[0] ?? ""} disabled={!choice || !kinds?.numeric.length}
                  onChange={(e) => setOverride({ ...override, ys: [e.target.value], kind: choice?.kind, x: choice?.x })}>
                  {kinds?.numeric.map((c) => <option key={c} value={c}>{c}</option>)}
                </select>
              </label>
            </div>
            {choice && choice.ys.length ? (
              <div ref={chartRef}>
                <Suspense fallback={<p role="status">Loading chart…</p>}>
                  <ResultChart columns={result.columns} rows={result.rows} choice={choice} />
                </Suspense>
                <div className="row">
                  <button type="button" onClick={() => exportChart("png")}>Export PNG</button>
                  <button type="button" onClick={() => exportChart("svg")}>Export SVG</button>
                </div>
              </div>
            ) : (
              <p>No chart: the result needs a numeric column, and a time or text column to plot it against.</p>
            )}
          </div>
          <ResultTable key={result.sql + result.rows.length} columns={result.columns} rows={result.rows} />
        </>
      ) : run.isIdle ? (
        <p>Write a query or pick a table, then run it.</p>
      ) : null}
      <Dashboards saved={saved.data ?? []} current={openId ? { query_id: openId, chart } : null} />
    </section>
  );
}
