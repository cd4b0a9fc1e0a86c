import { useMemo, useState } from "react";

const PAGE = 50;

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), "en", { numeric: true });
}

/** A query result: click a column header to sort (again to reverse), pages of 50 rows. */
export function ResultTable({ columns, rows }: { columns: string[]; rows: unknown[][] }) {
  const [sort, setSort] = useState<{ col: number; desc: boolean } | null>(null);
  const [page, setPage] = useState(0);
  const sorted = useMemo(() => {
    if (!sort) return rows;
    const out = [...rows].sort((a, b) => compare(a[sort.col], b[sort.col]));
    return sort.desc ? out.reverse() : out;
  }, [rows, sort]);
  const pages = Math.max(1, Math.ceil(sorted.length / PAGE));
  const shown = sorted.slice(page * PAGE, page * PAGE + PAGE);
  const toggle = (col: number) => {
    setSort(sort?.col === col ? { col, desc: !sort.desc } : { col, desc: false });
    setPage(0);
  };
  return (
    <div>
      <table data-testid="result-table">
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th key={c} scope="col" aria-sort={sort?.col === i ? (sort.desc ? "descending" : "ascending") : "none"}>
                <button type="button" onClick={() => toggle(i)}>
                  {c}
                  {sort?.col === i ? (sort.desc ? " ▼" : " ▲") : ""}
                </button>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((r, i) => (
            <tr key={page * PAGE + i}>
              {r.map((v, j) => (
                <td key={j}>{v === null ? <span className="note">null</span> : typeof v === "object" ? JSON.stringify(v) : String(v)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <nav className="row" aria-label="Result pages">
        <button type="button" onClick={() => setPage(page - 1)} disabled={page === 0}>Previous</button>
        <span>
          Page {page + 1} of {pages} ({rows.length} rows)
        </span>
        <button type="button" onClick={() => setPage(page + 1)} disabled={page + 1 >= pages}>Next</button>
      </nav>
    </div>
  );
}
