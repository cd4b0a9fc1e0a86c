// A pipeline spec file as the builder edits it: the YAML document is the one source of truth.
//
// The graph is derived from the document, and every graph edit is applied to the document node by node
// (yaml's Document API), so keys the builder does not model, comments and key order stay where they are.
// Untouched files are never re-serialized: the text the API served is what the YAML view shows.

import { type Document, isMap, isSeq, LineCounter, parseDocument, type YAMLMap, type YAMLSeq } from "yaml";

export type Obj = Record<string, unknown>;
export type NodeKind = "source" | "table" | "transform" | "check";
/** Where a check hangs: on a source's or a transform's table. */
export type Owner = { kind: "source" | "transform"; name: string };

export interface SpecNode {
  id: string;
  kind: NodeKind;
  label: string;
  /** For source/transform: its name; for a check: its owner's name; for a table: the producing step's name. */
  name: string;
  owner?: Owner;
  /** A check's position in its owner's `checks:` list. */
  index?: number;
  /** The spec object the node stands for (sources, transforms, checks); tables have none. */
  value?: Obj;
  /** First and last line of its YAML (1-based), to pin the server's `file:line` problems on the node. */
  lines?: [number, number];
}

export interface SpecEdge {
  id: string;
  source: string;
  target: string;
}

export interface SpecGraph {
  nodes: SpecNode[];
  edges: SpecEdge[];
  /** Upstream names the transforms read that no source or transform of the pipeline produces. */
  unresolved: string[];
}

// The same pattern as aggregator/pipelines/refs.py REF_RE.
const REF_RE = /\{\{\s*ref\(\s*['"]([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)['"]\s*\)\s*\}\}/g;

export function refsOf(transform: Obj): string[] {
  if (typeof transform.sql === "string") {
    const names: string[] = [];
    for (const m of transform.sql.matchAll(REF_RE)) if (!names.includes(m[1])) names.push(m[1]);
    return names;
  }
  const names = typeof transform.from === "string" ? [transform.from] : [];
  for (const step of Array.isArray(transform.steps) ? transform.steps : []) {
    const ref = (step as Obj)?.join && ((step as Obj).join as Obj).ref;
    if (typeof ref === "string" && !names.includes(ref)) names.push(ref);
  }
  return names;
}

export class SpecError extends Error {}

/** Parse a spec file; YAML syntax errors are thrown with their line. */
const LINES = new WeakMap<Document, LineCounter>();

export function parseSpec(text: string): Document {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  LINES.set(doc, lineCounter);
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new SpecError(`${line ? `line ${line}: ` : ""}${e.message.split("\n")[0]}`);
  }
  return doc;
}

/** Names of the pipelines the file declares directly (template uses have no graph of their own here). */
export function pipelineNames(doc: Document): string[] {
  const list = doc.get("pipelines");
  if (!isSeq(list)) return [];
  return list.items.filter(isMap).map((p) => p.get("name")).filter((n): n is string => typeof n === "string");
}

function pipelineIndex(doc: Document, pipeline: string): number {
  const list = doc.get("pipelines");
  const index = isSeq(list) ? list.items.findIndex((p) => isMap(p) && p.get("name") === pipeline) : -1;
  if (index < 0) throw new SpecError(`the file declares no pipeline named ${pipeline} (a template use is edited as YAML)`);
  return index;
}

function listOf(doc: Document, pipeline: string, key: "sources" | "transforms"): Obj[] {
  const node = doc.getIn(["pipelines", pipelineIndex(doc, pipeline), key]);
  return isSeq(node) ? (node.toJSON() as Obj[]).filter((o) => o && typeof o === "object") : [];
}

export function tableOf(pipeline: string, step: Obj): string {
  return typeof step.table === "string" ? step.table : `${pipeline}_${String(step.name)}`;
}

/** The pipeline as a graph: sources -> their tables -> transforms (by ref) -> their tables -> checks. */
export function specToGraph(doc: Document, pipeline: string): SpecGraph {
  const nodes: SpecNode[] = [];
  const edges: SpecEdge[] = [];
  const tableId = new Map<string, string>();
  const edge = (source: string, target: string) => edges.push({ id: `${source}->${target}`, source, target });
  const counter = LINES.get(doc);
  const linesOf = (path: (string | number)[]): [number, number] | undefined => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    if (!counter || !node?.range) return undefined;
    return [counter.linePos(node.range[0]).line, counter.linePos(Math.max(node.range[0], node.range[1] - 1)).line];
  };
  const p = pipelineIndex(doc, pipeline);
  const addStep = (kind: "source" | "transform", step: Obj, at: number) => {
    const name = String(step.name);
    const path = ["pipelines", p, kind === "source" ? "sources" : "transforms", at];
    const id = `${kind}:${name}`;
    const table = `table:${kind}:${name}`;
    nodes.push({ id, kind, label: name, name, value: step, lines: linesOf(path) });
    nodes.push({ id: table, kind: "table", label: tableOf(pipeline, step), name });
    edge(id, table);
    tableId.set(name, table);
    const checks = Array.isArray(step.checks) ? (step.checks as Obj[]) : [];
    checks.forEach((check, index) => {
      const cid = `check:${kind}:${name}:${index}`;
      nodes.push({ id: cid, kind: "check", label: String(check?.type ?? "check"), name, index, value: check,
        owner: { kind, name }, lines: linesOf([...path, "checks", index]) });
      edge(table, cid);
    });
  };
  const sources = listOf(doc, pipeline, "sources");
  const transforms = listOf(doc, pipeline, "transforms");
  sources.forEach((s, i) => addStep("source", s, i));
  transforms.forEach((t, i) => addStep("transform", t, i));
  const unresolved: string[] = [];
  for (const t of transforms) {
    for (const ref of refsOf(t)) {
      const from = tableId.get(ref);
      if (from) edge(from, `transform:${String(t.name)}`);
      else if (!unresolved.includes(ref)) unresolved.push(ref);
    }
  }
  return { nodes, edges, unresolved };
}

function stepPath(doc: Document, pipeline: string, kind: "source" | "transform", name: string): (string | number)[] {
  const key = kind === "source" ? "sources" : "transforms";
  const p = pipelineIndex(doc, pipeline);
  const list = doc.getIn(["pipelines", p, key]);
  const index = isSeq(list) ? list.items.findIndex((s) => isMap(s) && s.get("name") === name) : -1;
  if (index < 0) throw new SpecError(`pipeline ${pipeline} has no ${kind} named ${name}`);
  return ["pipelines", p, key, index];
}

/** Set the given keys on a map, leaving the others (unknown to the builder) as they are; `undefined` removes. */
function assign(doc: Document, path: (string | number)[], changes: Obj): void {
  const target = doc.getIn(path, true);
  if (!isMap(target)) throw new SpecError(`${path.join(".")} is not a mapping`);
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) {
      (target as YAMLMap).delete(key);
      continue;
    }
    const current: unknown = (target as YAMLMap).get(key, true);
    const plain = current && typeof current === "object" && "toJSON" in current
      ? (current as { toJSON(): unknown }).toJSON() : current;
    // Unchanged values keep their node (comments, flow style, quoting).
    if (current !== undefined && JSON.stringify(plain) === JSON.stringify(value)) continue;
    (target as YAMLMap).set(key, doc.createNode(value));
  }
}

/** Update the modelled fields of a source or transform (renames included). */
export function updateStep(doc: Document, pipeline: string, kind: "source" | "transform", name: string,
  changes: Obj): void {
  assign(doc, stepPath(doc, pipeline, kind, name), changes);
}

/** Update one check's fields. */
export function updateCheck(doc: Document, pipeline: string, owner: Owner, index: number, changes: Obj): void {
  assign(doc, [...stepPath(doc, pipeline, owner.kind, owner.name), "checks", index], changes);
}

function appendTo(doc: Document, path: (string | number)[], value: Obj): void {
  const list = doc.getIn(path, true);
  if (list === undefined || list === null) {
    doc.setIn(path, doc.createNode([value]));
    return;
  }
  if (!isSeq(list)) throw new SpecError(`${path.join(".")} is not a list`);
  (list as YAMLSeq).add(doc.createNode(value));
}

/** A name not yet used by a source or transform of the pipeline: `<base>`, `<base>_2`, … */
export function freshName(doc: Document, pipeline: string, base: string): string {
  const used = new Set([...listOf(doc, pipeline, "sources"), ...listOf(doc, pipeline, "transforms")]
    .map((s) => String(s.name)));
  if (!used.has(base)) return base;
  let i = 2;
  while (used.has(`${base}_${i}`)) i += 1;
  return `${base}_${i}`;
}

export function addSource(doc: Document, pipeline: string, source: Obj): void {
  appendTo(doc, ["pipelines", pipelineIndex(doc, pipeline), "sources"], source);
}

export function addTransform(doc: Document, pipeline: string, transform: Obj): void {
  appendTo(doc, ["pipelines", pipelineIndex(doc, pipeline), "transforms"], transform);
}

export function addCheck(doc: Document, pipeline: string, owner: Owner, check: Obj): void {
  appendTo(doc, [...stepPath(doc, pipeline, owner.kind, owner.name), "checks"], check);
}

/** Remove a source, transform or check node from the document. */
export function removeNode(doc: Document, pipeline: string, node: SpecNode): void {
  if (node.kind === "check" && node.owner && node.index !== undefined) {
    doc.deleteIn([...stepPath(doc, pipeline, node.owner.kind, node.owner.name), "checks", node.index]);
  } else if (node.kind === "source" || node.kind === "transform") {
    doc.deleteIn(stepPath(doc, pipeline, node.kind, node.name));
  }
}

/** The document as text. */
export function specToYaml(doc: Document): string {
  // No line folding and `{a: 1}` flow maps as the samples write them; spacing before an inline comment is the
  // one thing a graph edit normalizes (the page says so).
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** The plain data of the document (what the API's loader sees). */
export function specData(doc: Document): unknown {
  return doc.toJS();
}

/** The node a `file:line` problem belongs to: the innermost one whose YAML holds the line. */
export function nodeAtLine(graph: SpecGraph, line: number): SpecNode | undefined {
  let best: SpecNode | undefined;
  for (const node of graph.nodes) {
    if (!node.lines || line < node.lines[0] || line > node.lines[1]) continue;
    if (!best || node.lines[1] - node.lines[0] < best.lines![1] - best.lines![0]) best = node;
  }
  return best;
}
