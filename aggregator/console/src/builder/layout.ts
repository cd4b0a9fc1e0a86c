// Where each node sits: columns by depth along the edges (sources left, checks right), rows in spec order.
import type { SpecGraph } from "./specGraph";

export const COLUMN_WIDTH = 230;
export const ROW_HEIGHT = 80;

export function layout(graph: SpecGraph): Map<string, { x: number; y: number }> {
  const incoming = new Map<string, string[]>();
  for (const e of graph.edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const depth = new Map<string, number>();
  // Longest path from a root; the spec's refs form a DAG (the loader rejects cycles), the guard stops a bad draft.
  const depthOf = (id: string, seen: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0;
    seen.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map((s) => depthOf(s, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  const rows = new Map<number, number>();
  const out = new Map<string, { x: number; y: number }>();
  for (const node of graph.nodes) {
    const d = depthOf(node.id, new Set());
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    out.set(node.id, { x: d * COLUMN_WIDTH, y: row * ROW_HEIGHT });
  }
  return out;
}
