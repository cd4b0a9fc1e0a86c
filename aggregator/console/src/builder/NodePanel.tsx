// The side panel: edits the selected node's modelled fields. A source's stream is a form generated from its
// connector type's stream JSON Schema (GET /api/connector-types); everything else the node holds stays as it is.
import Form from "@rjsf/core";
import type { RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { type ReactNode, useEffect, useId, useMemo, useState } from "react";

import type { ConnectorType } from "../api";
import { formSchema, pruneEmpty } from "../formSchema";
import type { Obj, SpecNode } from "./specGraph";

const WRITE_MODES = ["append", "replace", "merge"];
const CHECK_TYPES = ["not_null", "unique", "accepted_values", "row_count", "freshness", "schema_drift"];

export interface NodePanelProps {
  node: SpecNode;
  connections: Record<string, string>;
  types: ConnectorType[] | undefined;
  readOnly: boolean;
  problems: string[];
  onChange: (changes: Obj) => void;
  onRemove: () => void;
  /** Shown below the node's fields (the builder puts the row preview there). */
  children?: ReactNode;
}

const list = (value: unknown): string => (Array.isArray(value) ? value.join(", ") : "");
const unlist = (text: string): string[] | undefined => {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  return items.length ? items : undefined;
};
const orUndefined = (text: string): string | undefined => (text.trim() === "" ? undefined : text);

/** A text field that reports on blur (typing a name must not rename the node, and re-key the graph, per key). */
function Text({ label, value, onCommit, disabled, multiline }: { label: string; value: string; disabled: boolean;
  onCommit: (v: string) => void; multiline?: boolean }) {
  const [draft, setDraft] = useState(value);
  const id = useId();
  useEffect(() => setDraft(value), [value]);
  const commit = () => { if (draft !== value) onCommit(draft); };
  // A label beside (not around) the control: a wrapping label's name would include the control's value.
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {multiline ? (
        <textarea id={id} value={draft} disabled={disabled} rows={8} spellCheck={false} onChange={(e) => setDraft(e.target.value)}
          onBlur={commit} />
      ) : (
        <input id={id} value={draft} disabled={disabled} onChange={(e) => setDraft(e.target.value)} onBlur={commit}
          onKeyDown={(e) => { if (e.key === "Enter") commit(); }} />
      )}
    </div>
  );
}

export function NodePanel({ node, connections, types, readOnly, problems, onChange, onRemove, children }: NodePanelProps) {
  const v = node.value ?? {};
  const str = (key: string) => (typeof v[key] === "string" ? (v[key] as string) : "");
  return (
    <aside className="node-panel" aria-label={`Selected ${node.kind}`} data-testid="node-panel">
      <h2>{node.kind === "table" ? `Table ${node.label}` : `${node.kind[0].toUpperCase()}${node.kind.slice(1)} ${node.label}`}</h2>
      {problems.length ? (
        <ul className="error" role="alert" aria-label="Problems on this node">
          {problems.map((p) => <li key={p}>{p}</li>)}
        </ul>
      ) : null}
      {node.kind === "table" ? (
        <p>Written by <code>{node.name}</code>. Set its name with the step's <code>table</code> field.</p>
      ) : null}
      {node.kind === "source" || node.kind === "transform" ? (
        <>
          <Text label="Name" value={str("name")} disabled={readOnly} onCommit={(x) => onChange({ name: x.trim() })} />
          <Text label="Description" value={str("description")} disabled={readOnly}
            onCommit={(x) => onChange({ description: orUndefined(x) })} />
          <Text label="Table" value={str("table")} disabled={readOnly} onCommit={(x) => onChange({ table: orUndefined(x) })} />
        </>
      ) : null}
      {node.kind === "source" ? <SourceFields value={v} connections={connections} types={types} readOnly={readOnly}
        onChange={onChange} /> : null}
      {node.kind === "transform" ? (
        typeof v.sql === "string" || v.from === undefined ? (
          <Text label="SQL" multiline value={str("sql")} disabled={readOnly} onCommit={(x) => onChange({ sql: x })} />
        ) : (
          <>
            <Text label="From" value={str("from")} disabled={readOnly} onCommit={(x) => onChange({ from: x.trim() })} />
            <p className="hint">Its {Array.isArray(v.steps) ? v.steps.length : 0} declarative steps are edited in the YAML view.</p>
          </>
        )
      ) : null}
      {node.kind === "check" ? (
        <>
          <label className="field">
            Check type
            <select value={str("type")} disabled={readOnly} onChange={(e) => onChange({ type: e.target.value })}>
              {[...new Set([...CHECK_TYPES, str("type")])].filter(Boolean).map((t) => <option key={t}>{t}</option>)}
            </select>
          </label>
          {["not_null", "unique"].includes(str("type")) ? (
            <Text label="Columns (comma-separated)" value={list(v.columns)} disabled={readOnly}
              onCommit={(x) => onChange({ columns: unlist(x) })} />
          ) : null}
          {str("type") === "accepted_values" ? (
            <>
              <Text label="Column" value={str("column")} disabled={readOnly} onCommit={(x) => onChange({ column: x.trim() })} />
              <Text label="Values (comma-separated)" value={list(v.values)} disabled={readOnly}
                onCommit={(x) => onChange({ values: unlist(x) })} />
            </>
          ) : null}
          {str("type") === "row_count" ? (
            <Text label="Minimum rows" value={v.min === undefined ? "" : String(v.min)} disabled={readOnly}
              onCommit={(x) => onChange({ min: x.trim() === "" ? undefined : Number(x) })} />
          ) : null}
          <label className="field inline">
            <input type="checkbox" checked={v.blocking === true} disabled={readOnly}
              onChange={(e) => onChange({ blocking: e.target.checked ? true : undefined })} />
            Blocking (a failure stops downstream steps)
          </label>
          <p className="hint">Other check options are edited in the YAML view and kept as they are.</p>
        </>
      ) : null}
      {children}
      {!readOnly && node.kind !== "table" ? (
        <button type="button" onClick={onRemove}>Remove {node.kind}</button>
      ) : null}
    </aside>
  );
}

function SourceFields({ value, connections, types, readOnly, onChange }: { value: Obj; connections: Record<string, string>;
  types: ConnectorType[] | undefined; readOnly: boolean; onChange: (changes: Obj) => void }) {
  const connection = typeof value.connection === "string" ? value.connection : "";
  const type = types?.find((t) => t.name === connections[connection]);
  const stream = (value.stream && typeof value.stream === "object" ? value.stream : {}) as Obj;
  // Through formSchema() like a connection's config: environment references, optional values and `$ref`s
  // resolved (the REST stream's `parent` is itself a stream: shown once, then left to the YAML view).
  const schema = useMemo(() => (type ? (formSchema(type.stream_schema, stream) as RJSFSchema) : undefined), [type]); // eslint-disable-line react-hooks/exhaustive-deps
  return (
    <>
      <label className="field">
        Connection
        <select value={connection} disabled={readOnly} onChange={(e) => onChange({ connection: e.target.value })}>
          {connection in connections ? null : <option value={connection}>{connection || "(choose)"}</option>}
          {Object.keys(connections).map((c) => <option key={c} value={c}>{c} ({connections[c]})</option>)}
        </select>
      </label>
      <label className="field">
        Write mode
        <select value={typeof value.write_mode === "string" ? value.write_mode : ""} disabled={readOnly}
          onChange={(e) => onChange({ write_mode: e.target.value || undefined })}>
          <option value="">(default)</option>
          {WRITE_MODES.map((m) => <option key={m}>{m}</option>)}
        </select>
      </label>
      <h3>Stream</h3>
      {type && schema ? (
        <Form
          key={`${connection}:${JSON.stringify(stream)}`}
          className="rjsf"
          schema={schema}
          formData={stream}
          validator={validator}
          disabled={readOnly}
          showErrorList="top"
          noHtml5Validate
          uiSchema={{ "ui:submitButtonOptions": { submitText: "Apply stream", norender: readOnly } }}
          onSubmit={(e) => onChange({ stream: pruneEmpty(e.formData) })}
        />
      ) : (
        <p className="hint">
          {connection ? `Connection ${connection} is not declared in this file; ` : "Choose a connection; "}
          the stream is edited in the YAML view.
        </p>
      )}
    </>
  );
}
