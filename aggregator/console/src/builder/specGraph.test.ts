// Generated round-trip cases over every sample spec (src/test/example-specs.json, written from
// aggregator/examples/ by scripts/console_fixtures.py): spec -> graph -> YAML keeps everything.
import { describe, expect, it } from "vitest";

import examples from "../test/example-specs.json";
import {
  addCheck,
  addTransform,
  freshName,
  nodeAtLine,
  parseSpec,
  pipelineNames,
  refsOf,
  specData,
  specToGraph,
  specToYaml,
  SpecError,
  updateStep,
  type Obj,
} from "./specGraph";

const files = Object.entries(examples as Record<string, string>);

/** Comment texts in order (what a graph edit must keep, whatever the spacing before them). */
function comments(text: string): string[] {
  return [...text.matchAll(/(?:^|\s)#\s?(.*)$/gm)].map((m) => m[1].trim());
}

/** Data with its key order: JSON.stringify keeps insertion order, so equal strings mean equal order too. */
function ordered(text: string): string {
  return JSON.stringify(specData(parseSpec(text)));
}

const cases = files.flatMap(([file, text]) => pipelineNames(parseSpec(text)).map((p) => [file, p, text] as const));

describe("sample specs", () => {
  it("are all in the fixture", () => {
    expect(files.map(([f]) => f)).toEqual(expect.arrayContaining(["pipelines/sales.yaml", "pipelines/shop.yaml"]));
    expect(cases.length).toBeGreaterThanOrEqual(2);
  });

  it.each(files)("%s survives parse -> YAML with data, key order and comments", (_file, text) => {
    const out = specToYaml(parseSpec(text));
    expect(ordered(out)).toEqual(ordered(text));
    expect(comments(out)).toEqual(comments(text));
  });
});

describe.each(cases)("%s pipeline %s", (_file, pipeline, text) => {
  it("becomes a graph with a node per source, table, transform and check, and an edge per ref", () => {
    const doc = parseSpec(text);
    const spec = (specData(doc) as { pipelines: Obj[] }).pipelines.find((p) => p.name === pipeline)!;
    const sources = (spec.sources as Obj[]) ?? [];
    const transforms = (spec.transforms as Obj[]) ?? [];
    const checks = [...sources, ...transforms].reduce((n, s) => n + ((s.checks as Obj[]) ?? []).length, 0);
    const graph = specToGraph(doc, pipeline);
    const count = (kind: string) => graph.nodes.filter((n) => n.kind === kind).length;
    expect(count("source")).toBe(sources.length);
    expect(count("transform")).toBe(transforms.length);
    expect(count("table")).toBe(sources.length + transforms.length);
    expect(count("check")).toBe(checks);
    expect(graph.unresolved).toEqual([]);
    for (const t of transforms) {
      for (const ref of refsOf(t)) {
        expect(graph.edges.some((e) => e.target === `transform:${String(t.name)}` && e.source.endsWith(`:${ref}`)))
          .toBe(true);
      }
    }
    const ids = graph.nodes.map((n) => n.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of graph.edges) expect(ids).toContain(e.source), expect(ids).toContain(e.target);
  });

  it("keeps the document identical when every node is written back unchanged through the graph", () => {
    const doc = parseSpec(text);
    for (const node of specToGraph(doc, pipeline).nodes) {
      if (node.kind === "source" || node.kind === "transform") updateStep(doc, pipeline, node.kind, node.name, node.value!);
    }
    const out = specToYaml(doc);
    expect(out).toEqual(specToYaml(parseSpec(text)));
    expect(ordered(out)).toEqual(ordered(text));
  });

  it("edits only the fields the form changes and keeps the rest (unmodelled keys, comments, order)", () => {
    const doc = parseSpec(text);
    const first = specToGraph(doc, pipeline).nodes.find((n) => n.kind === "source")!;
    updateStep(doc, pipeline, "source", first.name, { description: "changed in the builder" });
    const out = specToYaml(doc);
    const before = specData(parseSpec(text)) as { pipelines: Obj[] };
    const source = (before.pipelines.find((p) => p.name === pipeline)!.sources as Obj[])
      .find((s) => s.name === first.name)!;
    source.description = "changed in the builder";
    expect(JSON.stringify(specData(parseSpec(out)))).toEqual(JSON.stringify(before));
    expect(comments(out)).toEqual(comments(text));
  });

  it("adds a transform and a check, and the YAML parses back to the same graph", () => {
    const doc = parseSpec(text);
    const upstream = specToGraph(doc, pipeline).nodes.find((n) => n.kind === "source")!.name;
    const name = freshName(doc, pipeline, "new_transform");
    addTransform(doc, pipeline, { name, sql: `SELECT * FROM {{ ref('${upstream}') }}` });
    addCheck(doc, pipeline, { kind: "transform", name }, { type: "row_count", min: 1 });
    const graph = specToGraph(doc, pipeline);
    expect(graph.edges).toContainEqual(expect.objectContaining({ source: `table:source:${upstream}`,
      target: `transform:${name}` }));
    expect(graph.nodes.some((n) => n.kind === "check" && n.owner?.name === name)).toBe(true);
    const out = specToYaml(doc);
    const again = specToGraph(parseSpec(out), pipeline);
    expect(again.nodes.map((n) => n.id)).toEqual(graph.nodes.map((n) => n.id));
    expect(again.edges).toEqual(graph.edges);
    expect(comments(out)).toEqual(comments(text));
  });
});

describe("bad input", () => {
  it("names the line of a YAML syntax error", () => {
    expect(() => parseSpec("pipelines:\n  - name: x\n   bad: [")).toThrow(SpecError);
    expect(() => parseSpec("pipelines:\n  - name: x\n   bad: [")).toThrow(/line \d+/);
  });

  it("says which pipeline is missing", () => {
    expect(() => specToGraph(parseSpec("pipelines: []\n"), "nope")).toThrow(/no pipeline named nope/);
  });
});

describe.each(cases)("%s pipeline %s: problem lines", (_file, pipeline, text) => {
  it("pin each node's first line on that node", () => {
    const graph = specToGraph(parseSpec(text), pipeline);
    const pinned = graph.nodes.filter((n) => n.lines);
    expect(pinned.length).toBe(graph.nodes.filter((n) => n.kind !== "table").length);
    for (const node of pinned) expect(nodeAtLine(graph, node.lines![0])?.id).toBe(node.id);
  });
});
