// `/pipelines/<name>/sources/<source>/mapping`: the source's discovered columns beside the table's (the schema
// comparison API), each renamed, typed or excluded, and the schema policy; saved into the spec file with If-Match.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useParams } from "react-router-dom";

import { ApiError, getJson, request } from "../api";
import {
  applyMapping, CHANGES, type ColumnEdit, columnEdits, MISSING, type Policy, policyOf, type SchemaComparison,
  sourceValue, tableColumn, TYPES,
} from "../builder/columnMapping";
import { parseSpec, specData, specToYaml } from "../builder/specGraph";
import { ErrorBox } from "../components/Unavailable";
import { ability, useMe } from "../me";

interface PipelineDoc {
  file: string;
  etag: string;
  version: number;
  in_scope: boolean;
  yaml: string;
}

interface Problem {
  message?: string;
  field?: string | null;
  line?: number | null;
  file?: string;
}

/** `pipelines.i.sources.j` of this source in the file, as the server's problems name fields (see `dotted`). */
function fieldPrefix(yaml: string, pipeline: string, source: string): string | null {
  const data = specData(parseSpec(yaml)) as { pipelines?: { name?: string; sources?: { name?: string }[] }[] };
  const p = (data.pipelines ?? []).findIndex((x) => x?.name === pipeline);
  const s = p < 0 ? -1 : (data.pipelines![p].sources ?? []).findIndex((x) => x?.name === source);
  return s < 0 ? null : `pipelines.${p}.sources.${s}`;
}

/** A problem's field with list indices as dotted parts: `pipelines[0].sources[1]` -> `pipelines.0.sources.1`. */
const dotted = (field: string): string => field.replace(/\[(\d+)\]/g, ".$1");

export default function SchemaMapping() {
  const { name = "", source = "" } = useParams();
  const me = useMe();
  const client = useQueryClient();
  const doc = useQuery({ queryKey: ["pipeline", name], staleTime: Infinity,
    queryFn: () => getJson<PipelineDoc>(`api/pipelines/${encodeURIComponent(name)}`) });
  const schema = useQuery({ queryKey: ["source-schema", name, source],
    queryFn: () => getJson<SchemaComparison>(
      `api/pipelines/${encodeURIComponent(name)}/sources/${encodeURIComponent(source)}/schema`) });

  const [edits, setEdits] = useState<[string, ColumnEdit][] | null>(null);
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [base, setBase] = useState<PipelineDoc | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [fault, setFault] = useState<string | null>(null);

  const start = (d: PipelineDoc, comparison: SchemaComparison | undefined) => {
    try {
      const value = sourceValue(parseSpec(d.yaml), name, source);
      setEdits(columnEdits(value, Object.keys(comparison?.source_columns ?? {})));
      setPolicy(policyOf(value));
      setBase(d);
      setFault(null);
    } catch (e) {
      setFault((e as Error).message);
    }
  };
  useEffect(() => {
    if (doc.data && !base && (schema.data || schema.error)) start(doc.data, schema.data);
  }, [doc.data, schema.data, schema.error]); // eslint-disable-line react-hooks/exhaustive-deps

  const write = ability(me.data, "update_pipeline");
  const scopeReason = doc.data && !doc.data.in_scope ? `your grant does not include pipeline ${name}` : null;
  const canEdit = write.allowed && !scopeReason;
  const readOnlyReason = !write.allowed ? write.reason : scopeReason;

  const save = useMutation({
    mutationFn: async () => {
      if (!base || !edits || !policy) throw new Error("nothing loaded yet");
      const d = parseSpec(base.yaml);
      applyMapping(d, name, source, edits, policy);
      const yaml = specToYaml(d);
      const response = await request(`api/pipelines/${encodeURIComponent(name)}`,
        { method: "PUT", body: { yaml }, headers: { "if-match": base.etag } });
      const result = (await response.json()) as { etag: string; version: number };
      return { ...base, yaml, etag: result.etag, version: result.version };
    },
    onMutate: () => setProblems([]),
    onSuccess: (saved) => {
      setBase(saved);
      client.setQueryData(["pipeline", name], saved);
      void client.invalidateQueries({ queryKey: ["source-schema", name, source] });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.problems) setProblems(e.problems as Problem[]);
    },
  });

  const reload = async () => {
    const fresh = await doc.refetch();
    save.reset();
    setProblems([]);
    if (fresh.data) start(fresh.data, schema.data);
  };

  const prefix = base ? fieldPrefix(base.yaml, name, source) : null;
  const rowProblems = (column: string) => problems.filter((p) => prefix && p.field &&
    (dotted(p.field) === `${prefix}.columns.${column}` || dotted(p.field).startsWith(`${prefix}.columns.${column}.`)));
  const placed = new Set(edits?.flatMap(([c]) => rowProblems(c)) ?? []);
  const elsewhere = problems.filter((p) => !placed.has(p));
  const conflict = save.error instanceof ApiError && (save.error.status === 412 || save.error.status === 409);
  const comparison = schema.data;
  const setRow = (index: number, change: Partial<ColumnEdit>) =>
    setEdits((rows) => rows && rows.map((row, i) => (i === index ? [row[0], { ...row[1], ...change }] : row)));

  return (
    <section>
      <Link to={`/builder/${encodeURIComponent(name)}`}>← Pipeline {name}</Link>
      <h1>Schema mapping: {name}.{source}</h1>
      <p className="hint">
        The columns the source has now, beside the table's. A rename or exclusion applies to every batch before
        the load; <code>primary_key</code>, checks and sensitive columns name the table's columns.
      </p>
      <ErrorBox error={doc.error} title="Could not load the pipeline" />
      <ErrorBox error={schema.error} title="Could not compare the schemas" />
      {fault ? <p className="error" role="alert">{fault}</p> : null}
      {comparison?.source_error ? (
        <p className="error" role="alert">Discovery failed, so only the columns the spec names are listed: {comparison.source_error}</p>
      ) : null}
      {readOnlyReason && doc.data ? (
        <p className="unavailable" role="note">Editing this mapping is not available to you: {readOnlyReason}.</p>
      ) : null}
      {!edits || !policy ? <p role="status">Loading…</p> : (
        <>
          <table className="mapping" data-testid="mapping-table">
            <thead>
              <tr>
                <th scope="col">Source column</th>
                <th scope="col">Discovered type</th>
                <th scope="col">Table column</th>
                <th scope="col">Declared type</th>
                <th scope="col">Exclude</th>
                <th scope="col">In the table now</th>
              </tr>
            </thead>
            <tbody>
              {edits.map(([column, e], i) => {
                const target = tableColumn(column, e);
                const here = rowProblems(column);
                const now = target ? comparison?.destination?.[target] : undefined;
                return (
                  <tr key={column} className={e.exclude ? "excluded" : undefined}>
                    <th scope="row"><code>{column}</code></th>
                    <td>{comparison?.source_columns?.[column] ?? "not discovered"}</td>
                    <td>
                      <input aria-label={`Table column for ${column}`} value={e.rename} placeholder={column}
                        disabled={!canEdit || e.exclude} spellCheck={false}
                        onChange={(ev) => setRow(i, { rename: ev.target.value })} aria-invalid={here.length > 0} />
                      {here.length ? (
                        <ul className="error" role="alert" aria-label={`Problems with ${column}`}>
                          {here.map((p, k) => <li key={k}>{p.message}</li>)}
                        </ul>
                      ) : null}
                    </td>
                    <td>
                      <select aria-label={`Declared type of ${column}`} value={e.type} disabled={!canEdit || e.exclude}
                        onChange={(ev) => setRow(i, { type: ev.target.value })}>
                        <option value="">(inferred)</option>
                        {TYPES.map((t) => <option key={t}>{t}</option>)}
                      </select>
                    </td>
                    <td>
                      <input type="checkbox" aria-label={`Exclude ${column}`} checked={e.exclude} disabled={!canEdit}
                        onChange={(ev) => setRow(i, { exclude: ev.target.checked })} />
                    </td>
                    <td>{e.exclude ? "excluded" : now ? `${target} (${now})` : `${target}: not yet`}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <fieldset className="policy">
            <legend>Schema policy</legend>
            <label className="field">
              New columns and type changes
              <select value={policy.changes} disabled={!canEdit}
                onChange={(ev) => setPolicy({ ...policy, changes: ev.target.value })}>
                {CHANGES.map((c) => <option key={c}>{c}</option>)}
              </select>
            </label>
            <label className="field">
              Columns that stop arriving
              <select value={policy.missing_columns} disabled={!canEdit}
                onChange={(ev) => setPolicy({ ...policy, missing_columns: ev.target.value })}>
                {MISSING.map((c) => <option key={c}>{c}</option>)}
              </select>
            </label>
          </fieldset>
          {canEdit ? (
            <button type="button" className="primary" disabled={save.isPending} onClick={() => save.mutate()}>
              {save.isPending ? "Saving…" : "Save mapping"}
            </button>
          ) : null}
        </>
      )}
      {conflict ? (
        <div className="error" role="alert" data-testid="save-conflict">
          <strong>Conflict ({(save.error as ApiError).status}):</strong> the pipeline changed after you opened this
          page. <button type="button" onClick={reload}>Reload it</button> and map again.
        </div>
      ) : save.error && !(save.error instanceof ApiError && save.error.problems) ? (
        <ErrorBox error={save.error} title="Save failed" />
      ) : null}
      {elsewhere.length ? (
        <ul className="error" role="alert" aria-label="Problems">
          {elsewhere.map((p, k) => <li key={k}>{p.field ? `${p.field}: ` : ""}{p.message}</li>)}
        </ul>
      ) : null}
      {save.isSuccess ? <p role="status" data-testid="save-result">Saved as version {save.data.version}.</p> : null}
    </section>
  );
}
