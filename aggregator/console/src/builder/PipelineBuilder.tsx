// One pipeline in the builder: graph, palette, side panel and YAML view over one YAML text (see specGraph.ts).
import "@xyflow/react/dist/style.css";

import { useMutation, useQuery } from "@tanstack/react-query";
import { Background, Controls, type Edge, type Node, type NodeChange, ReactFlow } from "@xyflow/react";
import { type DragEvent, useCallback, useEffect, useMemo, useState } from "react";
import { Link } from "react-router-dom";

import { ApiError, type ConnectionInfo, type ConnectorType, getJson, request } from "../api";
import { ErrorBox } from "../components/Unavailable";
import { ability, useMe } from "../me";
import { layout } from "./layout";
import { NodePanel } from "./NodePanel";
import { PreviewRows } from "./PreviewRows";
import { VersionHistory } from "./VersionHistory";
import {
  addCheck, addSource, addTransform, freshName, nodeAtLine, type Obj, type Owner, parseSpec, removeNode,
  type SpecGraph, specToGraph, specToYaml, updateCheck, updateStep,
} from "./specGraph";

interface PipelineDoc {
  name: string;
  file: string;
  etag: string;
  version: number;
  in_scope: boolean;
  yaml: string;
}

interface Problem {
  file?: string;
  line?: number | null;
  field?: string | null;
  message?: string;
  text?: string;
}

type PaletteKind = "source" | "transform" | "check";
const DRAG_TYPE = "application/x-aggregator-node";

function parsed(text: string, pipeline: string): { graph?: SpecGraph; error?: string } {
  try {
    return { graph: specToGraph(parseSpec(text), pipeline) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function PipelineBuilder({ name }: { name: string }) {
  const me = useMe();
  const doc = useQuery({ queryKey: ["pipeline", name], staleTime: Infinity,
    queryFn: () => getJson<PipelineDoc>(`api/pipelines/${encodeURIComponent(name)}`) });
  const types = useQuery({ queryKey: ["connector-types"], staleTime: Infinity,
    queryFn: () => getJson<ConnectorType[]>("api/connector-types") });
  const connectionList = useQuery({ queryKey: ["connections"], queryFn: () => getJson<ConnectionInfo[]>("api/connections") });

  // `text` is the spec as the graph shows it; `draft` is the YAML view's content (it may not parse yet).
  const [text, setText] = useState<string | null>(null);
  const [draft, setDraft] = useState("");
  const [etag, setEtag] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[] | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const load = (d: PipelineDoc) => {
    setText(d.yaml);
    setDraft(d.yaml);
    setSaved(d.yaml);
    setEtag(d.etag);
    setProblems(null);
  };
  useEffect(() => {
    if (doc.data && text === null) load(doc.data);
  }, [doc.data]); // eslint-disable-line react-hooks/exhaustive-deps

  const write = ability(me.data, "update_pipeline");
  const scopeReason = doc.data && !doc.data.in_scope ? `your grant does not include pipeline ${name}` : null;
  const canEdit = write.allowed && !scopeReason;
  const readOnlyReason = !write.allowed ? write.reason : scopeReason;
  const rollbackAbility = ability(me.data, "rollback_pipeline");
  const rollback = rollbackAbility.allowed && scopeReason ? { allowed: false, reason: scopeReason } : rollbackAbility;

  const current = useMemo(() => (text === null ? {} : parsed(text, name)), [text, name]);
  const draftError = useMemo(() => (draft === text ? undefined : parsed(draft, name).error), [draft, text, name]);
  const graph = current.graph;
  const connections = useMemo(() => {
    const out: Record<string, string> = {};
    for (const c of connectionList.data ?? []) out[c.name] = c.type;
    return out;
  }, [connectionList.data]);

  /** Apply a graph edit to a fresh parse of the text, and show the result in both views. */
  const edit = (change: (d: ReturnType<typeof parseSpec>) => void) => {
    if (text === null || !canEdit) return;
    try {
      const d = parseSpec(text);
      change(d);
      const next = specToYaml(d);
      setText(next);
      setDraft(next);
      setNotice(null);
    } catch (e) {
      setNotice((e as Error).message);
    }
  };

  const onDraft = (value: string) => {
    setDraft(value);
    if (!parsed(value, name).error) setText(value); // the graph follows every draft that parses
  };

  const selectedNode = graph?.nodes.find((n) => n.id === selected);
  const ownerOf = (): Owner | null => {
    if (!selectedNode) return null;
    if (selectedNode.kind === "source" || selectedNode.kind === "transform") return { kind: selectedNode.kind, name: selectedNode.name };
    if (selectedNode.owner) return selectedNode.owner;
    if (selectedNode.kind === "table") {
      const step = graph?.nodes.find((n) => n.id === selectedNode.id.replace(/^table:/, ""));
      if (step && (step.kind === "source" || step.kind === "transform")) return { kind: step.kind, name: step.name };
    }
    return null;
  };

  const add = (kind: PaletteKind) => {
    edit((d) => {
      if (kind === "source") {
        const conn = Object.keys(connections)[0] ?? "";
        const streamType = types.data?.find((t) => t.name === connections[conn])?.stream_type ?? "";
        const source = freshName(d, name, "new_source");
        addSource(d, name, { name: source, connection: conn, stream: { type: streamType } });
        setSelected(`source:${source}`);
      } else if (kind === "transform") {
        const owner = ownerOf();
        const upstream = owner?.name ?? graph?.nodes.filter((n) => n.kind === "source" || n.kind === "transform").slice(-1)[0]?.name;
        const transform = freshName(d, name, "new_transform");
        addTransform(d, name, { name: transform, sql: upstream ? `SELECT * FROM {{ ref('${upstream}') }}` : "SELECT 1" });
        setSelected(`transform:${transform}`);
      } else {
        const owner = ownerOf();
        if (!owner) throw new Error("Select a source or transform first: a check is on its table.");
        addCheck(d, name, owner, { type: "row_count", min: 1 });
      }
    });
  };

  const validate = useMutation({
    mutationFn: (yaml: string) => getJson<{ ok: boolean; problems: Problem[] }>("api/pipelines/validate",
      { method: "POST", body: { name, yaml } }),
    onSuccess: (report) => setProblems(report.problems),
  });
  const save = useMutation({
    mutationFn: async (yaml: string) => {
      const response = await request(`api/pipelines/${encodeURIComponent(name)}`,
        { method: "PUT", body: { yaml }, headers: { "if-match": etag } });
      return { yaml, result: (await response.json()) as { etag: string; version: number } };
    },
    onSuccess: ({ yaml, result }) => {
      setEtag(result.etag);
      setSaved(yaml);
      setProblems([]);
    },
    onError: (e) => {
      if (e instanceof ApiError && e.problems) setProblems(e.problems as Problem[]);
    },
  });

  // Live validation of the edited spec, a moment after the last change.
  useEffect(() => {
    if (text === null || text === saved) return;
    const timer = window.setTimeout(() => validate.mutate(text), 800);
    return () => window.clearTimeout(timer);
  }, [text]); // eslint-disable-line react-hooks/exhaustive-deps

  const reload = async () => {
    const fresh = await doc.refetch();
    if (fresh.data) load(fresh.data);
    save.reset();
  };

  const file = doc.data?.file;
  const pinned = new Map<string, string[]>();
  const unpinned: string[] = [];
  for (const p of problems ?? []) {
    const label = p.text ?? p.message ?? JSON.stringify(p);
    const node = graph && p.line && (!p.file || p.file === file) ? nodeAtLine(graph, p.line) : undefined;
    if (node) pinned.set(node.id, [...(pinned.get(node.id) ?? []), label]);
    else unpinned.push(label);
  }

  const positions = useMemo(() => (graph ? layout(graph) : new Map()), [graph]);
  // React Flow measures each node once, when its element first gets a size, and reports it here. The nodes
  // below are new objects on every render; without their `measured` size React Flow hides them again
  // (`visibility: hidden`) until a size change it may never see: after a rollback the surviving nodes stayed
  // hidden (seen in CI). So the sizes are kept and given back.
  const [measured, setMeasured] = useState<Record<string, { width: number; height: number }>>({});
  const onNodesChange = useCallback((changes: NodeChange[]) => {
    const sized = changes.flatMap((c) => (c.type === "dimensions" && c.dimensions ? [[c.id, c.dimensions] as const] : []));
    if (sized.length) setMeasured((m) => ({ ...m, ...Object.fromEntries(sized) }));
  }, []);
  const nodes: Node[] = (graph?.nodes ?? []).map((n) => ({
    id: n.id,
    measured: measured[n.id],
    position: positions.get(n.id) ?? { x: 0, y: 0 },
    data: { label: `${n.kind}: ${n.label}` },
    className: `flow-node flow-${n.kind}${pinned.has(n.id) ? " has-problem" : ""}`,
    selected: n.id === selected,
    ariaLabel: `${n.kind} ${n.label}${pinned.has(n.id) ? " (has problems)" : ""}`,
  }));
  const edges: Edge[] = (graph?.edges ?? []).map((e) => ({ ...e }));

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    const kind = event.dataTransfer.getData(DRAG_TYPE) as PaletteKind;
    if (kind) add(kind);
  };

  if (doc.error) {
    return (
      <section>
        <h1>Pipeline {name}</h1>
        <ErrorBox error={doc.error} title="Could not load the pipeline" />
        <Link to="/builder">← Pipelines</Link>
      </section>
    );
  }
  const dirty = text !== null && text !== saved;
  const conflict = save.error instanceof ApiError && save.error.status === 412;

  return (
    <section className="builder">
      <Link to="/builder">← Pipelines</Link>
      <h1>Pipeline {name}</h1>
      {doc.isLoading || text === null ? <p role="status">Loading…</p> : null}
      {readOnlyReason && doc.data ? (
        <p className="unavailable" role="note">Editing this pipeline is not available to you: {readOnlyReason}. The graph is read-only.</p>
      ) : null}
      {canEdit ? (
        <div className="palette" role="toolbar" aria-label="Add a node">
          {(["source", "transform", "check"] as PaletteKind[]).map((kind) => (
            <button key={kind} type="button" draggable
              onDragStart={(e) => { e.dataTransfer.setData(DRAG_TYPE, kind); e.dataTransfer.effectAllowed = "copy"; }}
              onClick={() => add(kind)}
              title={kind === "check" ? "Adds a row count check to the selected source or transform" : `Drag onto the graph or click`}>
              Add {kind}
            </button>
          ))}
          <span className="spacer" />
          <button type="button" onClick={() => text && validate.mutate(text)} disabled={text === null || validate.isPending}>
            Validate
          </button>
          <button type="button" className="primary" disabled={!dirty || save.isPending || !!draftError}
            onClick={() => text && save.mutate(text)}>
            {save.isPending ? "Saving…" : "Save"}
          </button>
        </div>
      ) : null}
      {notice ? <p className="error" role="alert">{notice}</p> : null}
      {conflict ? (
        <div className="error" role="alert" data-testid="save-conflict">
          <strong>Conflict (412):</strong> someone saved this pipeline after you opened it. Your version is still in
          the YAML view; <button type="button" onClick={reload}>Reload theirs</button> to start again from it.
        </div>
      ) : save.error && !(save.error instanceof ApiError && save.error.problems) ? (
        <ErrorBox error={save.error} title="Save failed" />
      ) : null}
      {save.isSuccess && !dirty ? <p role="status" data-testid="save-result">Saved as version {save.data.result.version}.</p> : null}
      {unpinned.length ? (
        <ul className="error" role="alert" aria-label="Problems">
          {unpinned.map((p) => <li key={p}>{p}</li>)}
        </ul>
      ) : problems && problems.length === 0 && dirty ? <p role="status">The spec is valid.</p> : null}
      {current.error ? <p className="error" role="alert">The spec cannot be shown as a graph: {current.error}</p> : null}
      {graph?.unresolved.length ? (
        <p className="hint">Reads tables from outside this pipeline: {graph.unresolved.join(", ")}.</p>
      ) : null}
      <div className="builder-body">
        <div className="builder-graph" data-testid="builder-graph" onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
          <ReactFlow nodes={nodes} edges={edges} onNodesChange={onNodesChange} fitView nodesDraggable={false}
            nodesConnectable={false}
            elementsSelectable onNodeClick={(_e, n) => setSelected(n.id)} onPaneClick={() => setSelected(null)}
            proOptions={{ hideAttribution: true }} minZoom={0.1}>
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
        {selectedNode ? (
          <NodePanel node={selectedNode} connections={connections} types={types.data} readOnly={!canEdit}
            problems={pinned.get(selectedNode.id) ?? []}
            onChange={(changes: Obj) => {
              edit((d) => {
                if (selectedNode.kind === "check" && selectedNode.owner) updateCheck(d, name, selectedNode.owner, selectedNode.index!, changes);
                else if (selectedNode.kind === "source" || selectedNode.kind === "transform") updateStep(d, name, selectedNode.kind, selectedNode.name, changes);
              });
              if (typeof changes.name === "string" && selectedNode.kind !== "check") setSelected(`${selectedNode.kind}:${changes.name}`);
            }}
            onRemove={() => { edit((d) => removeNode(d, name, selectedNode)); setSelected(null); }}>
            {selectedNode.kind === "source" ? (
              <p>
                <Link to={`/pipelines/${encodeURIComponent(name)}/sources/${encodeURIComponent(selectedNode.name)}/mapping`}>
                  Schema mapping
                </Link>{dirty ? " (of the saved version: save first)" : ""}: rename, type or exclude its columns.
              </p>
            ) : null}
            {selectedNode.kind === "source" || selectedNode.kind === "transform" ? (
              <PreviewRows pipeline={name} kind={selectedNode.kind} name={selectedNode.name} unsaved={dirty}
                ability={ability(me.data, `preview_${selectedNode.kind}`)} />
            ) : null}
          </NodePanel>
        ) : (
          <aside className="node-panel"><p>Select a node to see {canEdit ? "and edit " : ""}its settings.</p></aside>
        )}
      </div>
      <div className="field yaml-view">
        <label htmlFor="builder-yaml">YAML</label>
        <textarea id="builder-yaml" value={draft} readOnly={!canEdit} spellCheck={false} rows={18} aria-invalid={!!draftError}
          onChange={(e) => onDraft(e.target.value)} data-testid="yaml-view" />
      </div>
      {draftError ? <p className="error" role="alert">The YAML does not parse, so the graph shows the last version that did: {draftError}</p> : null}
      <p className="hint">
        A graph edit keeps every key, comment and the key order of the file; it only normalizes the spacing before
        inline comments. Saving sends the whole file{file ? ` (${file})` : ""} with If-Match, so a concurrent change is a conflict, not lost.
      </p>
      {saved !== null ? (
        <VersionHistory name={name} current={saved} etag={etag} rollback={rollback} dirty={dirty}
          onRolledBack={async () => { await reload(); setSelected(null); }} />
      ) : null}
    </section>
  );
}
