// A source's column mapping as the Schema mapping page edits it: per source column a rename, a declared type
// or an exclusion (the spec's `columns:`), and the schema policy. Written into the YAML document through
// updateStep, so the rest of the file (comments, key order, keys the page does not model) stays as it is.
import { type Document, isMap, type YAMLMap } from "yaml";

import { type Obj, specToGraph, updateStep } from "./specGraph";

export const TYPES = ["integer", "float", "boolean", "text", "timestamp", "date"];
export const CHANGES = ["evolve", "freeze", "discard"];
export const MISSING = ["keep", "fail", "accept"];

/** GET /api/pipelines/{name}/sources/{source}/schema. */
export interface SchemaComparison {
  source: Record<string, string> | null;
  source_error: string | null;
  source_columns?: Record<string, string> | null;
  mapping?: Record<string, string | null> | null;
  destination: Record<string, string> | null;
  last_materialization: Record<string, string> | null;
}

/** One source column on the page: `rename` "" keeps the name, `type` "" lets the load infer it. */
export interface ColumnEdit {
  rename: string;
  type: string;
  exclude: boolean;
}

export interface Policy {
  changes: string;
  missing_columns: string;
}

export function sourceValue(doc: Document, pipeline: string, source: string): Obj {
  const node = specToGraph(doc, pipeline).nodes.find((n) => n.id === `source:${source}`);
  if (!node?.value) throw new Error(`pipeline ${pipeline} has no source named ${source} in this file`);
  return node.value;
}

/** The page's rows: every discovered source column, then the ones the spec names that were not discovered. */
export function columnEdits(source: Obj, discovered: string[]): [string, ColumnEdit][] {
  const declared = (source.columns && typeof source.columns === "object" ? source.columns : {}) as Record<string, Obj>;
  const names = [...discovered, ...Object.keys(declared).filter((c) => !discovered.includes(c))];
  return names.map((name) => {
    const hint = declared[name] ?? {};
    return [name, {
      rename: typeof hint.rename === "string" ? hint.rename : "",
      type: typeof hint.type === "string" ? hint.type : "",
      exclude: hint.exclude === true,
    }];
  });
}

export function policyOf(source: Obj): Policy {
  const p = source.schema_policy;
  if (typeof p === "string") return { changes: p, missing_columns: "keep" };
  if (p && typeof p === "object") {
    const o = p as Obj;
    return { changes: typeof o.changes === "string" ? o.changes : "evolve",
      missing_columns: typeof o.missing_columns === "string" ? o.missing_columns : "keep" };
  }
  return { changes: "evolve", missing_columns: "keep" };
}

/** The spec's `columns:` for these edits: only columns that say something; an excluded one says only that. */
export function columnsSpec(edits: [string, ColumnEdit][]): Record<string, Obj> | undefined {
  const out: Record<string, Obj> = {};
  for (const [name, e] of edits) {
    const rename = e.rename.trim();
    const hint: Obj = e.exclude ? { exclude: true } : {
      ...(e.type ? { type: e.type } : {}),
      ...(rename && rename !== name ? { rename } : {}),
    };
    if (Object.keys(hint).length) out[name] = hint;
  }
  return Object.keys(out).length ? out : undefined;
}

/** `schema_policy` in the shortest form that says it (absent for the defaults, unless the file had it). */
export function policySpec(policy: Policy, before: unknown): unknown {
  if (policy.missing_columns !== "keep") return { changes: policy.changes, missing_columns: policy.missing_columns };
  if (policy.changes === "evolve" && before === undefined) return undefined;
  return policy.changes;
}

/** Write the mapping and policy into the source's spec in `doc`. */
export function applyMapping(doc: Document, pipeline: string, source: string, edits: [string, ColumnEdit][],
  policy: Policy): void {
  const before = sourceValue(doc, pipeline, source);
  const columns = columnsSpec(edits);
  // One line per column, `ssn: {exclude: true}`, as the docs and samples write column hints.
  const node = columns === undefined ? undefined : doc.createNode(columns) as YAMLMap;
  for (const item of node?.items ?? []) if (isMap(item.value)) item.value.flow = true;
  updateStep(doc, pipeline, "source", source, {
    columns: node,
    schema_policy: policySpec(policy, before.schema_policy),
  });
}

/** The table column a row lands in as the page shows it ("" when excluded). */
export function tableColumn(name: string, e: ColumnEdit): string {
  return e.exclude ? "" : e.rename.trim() || name;
}
