import { useMutation, useQuery } from "@tanstack/react-query";
import { type FormEvent, lazy, Suspense, useMemo, useState } from "react";

import { getJson, type QueryResult, request, type TableInfo } from "../api";
import { type ChartChoice, chooseChart, columnKinds } from "../chart";
import { ResultTable } from "../components/ResultTable";
import { ErrorBox } from "../components/Unavailable";

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

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setOverride({});
    run.mutate({ sql, row_limit: limit });
  };
  const exportCsv = async () => {
    // The server writes the CSV (its formula-safe cells), from the same read-only query.
    setExporting("Exporting…");
    try {
      const response = await request("api/query", { method: "POST", body: { sql, row_limit: limit, format: "csv" },
        headers: { accept: "text/csv" } });
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = "query.csv";
      a.click();
      URL.revokeObjectURL(url);
      setExporting(null);
    } catch (err) {
      setExporting(`Export failed: ${(err as Error).message}`);
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
            <button type="button" onClick={exportCsv} disabled={!sql.trim() || !result}>Export CSV</button>
          </div>
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
              <Suspense fallback={<p role="status">Loading chart…</p>}>
                <ResultChart columns={result.columns} rows={result.rows} choice={choice} />
              </Suspense>
            ) : (
              <p>No chart: the result needs a numeric column, and a time or text column to plot it against.</p>
            )}
          </div>
          <ResultTable key={result.sql + result.rows.length} columns={result.columns} rows={result.rows} />
        </>
      ) : run.isIdle ? (
        <p>Write a query or pick a table, then run it.</p>
      ) : null}
    </section>
  );
}
