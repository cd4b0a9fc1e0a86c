// Chooses a chart for a query result from its columns: what a person would pick first.
//   a time column and numbers  -> a line over time (one series per numeric column)
//   a text column and numbers  -> bars per category
//   otherwise                  -> no chart (the page says why)

export type ChartKind = "line" | "bar";

export interface ChartChoice {
  kind: ChartKind;
  x: string;
  ys: string[];
}

export interface ColumnKinds {
  time: string[];
  numeric: string[];
  text: string[];
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function kindOf(values: unknown[]): "time" | "numeric" | "text" | "empty" {
  const present = values.filter((v) => v !== null && v !== undefined && v !== "");
  if (present.length === 0) return "empty";
  if (present.every((v) => typeof v === "number" || (typeof v === "string" && v.trim() !== "" && !isNaN(Number(v)))))
    return "numeric";
  if (present.every((v) => typeof v === "string" && ISO_DATE.test(v))) return "time";
  return "text";
}

export function columnKinds(columns: string[], rows: unknown[][]): ColumnKinds {
  const kinds: ColumnKinds = { time: [], numeric: [], text: [] };
  columns.forEach((name, i) => {
    const kind = kindOf(rows.map((r) => r[i]));
    if (kind !== "empty") kinds[kind].push(name);
  });
  return kinds;
}

export function chooseChart(columns: string[], rows: unknown[][]): ChartChoice | null {
  if (rows.length === 0) return null;
  const kinds = columnKinds(columns, rows);
  if (kinds.numeric.length === 0) return null;
  if (kinds.time.length > 0) return { kind: "line", x: kinds.time[0], ys: kinds.numeric.slice(0, 5) };
  if (kinds.text.length > 0) return { kind: "bar", x: kinds.text[0], ys: kinds.numeric.slice(0, 5) };
  if (kinds.numeric.length >= 2) return { kind: "line", x: kinds.numeric[0], ys: kinds.numeric.slice(1, 6) };
  return null;
}

/** Rows as objects keyed by column, numbers as numbers, sorted by x for a line: what the chart plots. */
export function chartData(columns: string[], rows: unknown[][], choice: ChartChoice): Record<string, unknown>[] {
  const data = rows.map((r) => {
    const o: Record<string, unknown> = {};
    columns.forEach((c, i) => {
      o[c] = choice.ys.includes(c) && r[i] !== null ? Number(r[i]) : r[i];
    });
    return o;
  });
  if (choice.kind === "line") data.sort((a, b) => String(a[choice.x]).localeCompare(String(b[choice.x]), "en", { numeric: true }));
  return data;
}
