// Version history of a pipeline (GET /api/pipelines/{name}/versions) and the line diff the panel shows.
// The diff is the `diff` library's (jsdiff, Myers' algorithm); this module only shapes its output into rows.
import { diffLines } from "diff";

export interface VersionInfo {
  version: number;
  action: "create" | "update" | "delete" | "rollback";
  username: string;
  ts: number;
  file: string;
  diff: string;
  yaml: string | null;
}

export interface DiffRow {
  kind: "added" | "removed" | "same";
  text: string;
  /** Line number in the chosen version (removed, same) and in the current text (added, same). */
  oldLine: number | null;
  newLine: number | null;
}

/** Rows of a line diff from `older` (a chosen version) to `newer` (the current text). */
export function lineDiff(older: string, newer: string): DiffRow[] {
  const rows: DiffRow[] = [];
  let oldLine = 1;
  let newLine = 1;
  for (const part of diffLines(older, newer)) {
    // A part's value ends with a newline unless it is the file's unterminated last line: no phantom "" row.
    const lines = part.value.replace(/\n$/, "").split("\n");
    for (const text of lines) {
      if (part.added) rows.push({ kind: "added", text, oldLine: null, newLine: newLine++ });
      else if (part.removed) rows.push({ kind: "removed", text, oldLine: oldLine++, newLine: null });
      else rows.push({ kind: "same", text, oldLine: oldLine++, newLine: newLine++ });
    }
  }
  return rows;
}

/** Unchanged runs longer than 2 * `context` lines are folded to their edges, as `diff -u` shows them. */
export type FoldedRow = DiffRow | { kind: "fold"; hidden: number };

export function foldUnchanged(rows: DiffRow[], context = 3): FoldedRow[] {
  const out: FoldedRow[] = [];
  let i = 0;
  while (i < rows.length) {
    if (rows[i].kind !== "same") {
      out.push(rows[i++]);
      continue;
    }
    let j = i;
    while (j < rows.length && rows[j].kind === "same") j++;
    const run = rows.slice(i, j);
    const keepHead = i === 0 ? 0 : context; // nothing changed before the file's first lines: no head context
    const keepTail = j === rows.length ? 0 : context;
    if (run.length > keepHead + keepTail + 1) {
      out.push(...run.slice(0, keepHead), { kind: "fold", hidden: run.length - keepHead - keepTail },
        ...run.slice(run.length - keepTail));
    } else {
      out.push(...run);
    }
    i = j;
  }
  return out;
}

export function changeCount(rows: DiffRow[]): { added: number; removed: number } {
  return { added: rows.filter((r) => r.kind === "added").length, removed: rows.filter((r) => r.kind === "removed").length };
}

export function when(ts: number): string {
  return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
