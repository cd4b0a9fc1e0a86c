import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";

import { type CheckResult, type ConnectionDocument, type ConnectorType, getJson, request,
  type StreamInfo } from "../api";
import { ConnectionForm } from "../components/ConnectionForm";
import { ErrorBox, Unavailable } from "../components/Unavailable";
import type { Schema } from "../formSchema";
import { ability, useMe } from "../me";

export default function ConnectionEdit() {
  const { name } = useParams();
  const isNew = name === undefined;
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const types = useQuery({ queryKey: ["connector-types"], queryFn: () => getJson<ConnectorType[]>("api/connector-types"),
    staleTime: Infinity });
  const doc = useQuery({ queryKey: ["connection", name], enabled: !isNew,
    queryFn: () => getJson<ConnectionDocument>(`api/connections/${encodeURIComponent(name!)}`) });

  const [newName, setNewName] = useState("");
  const [type, setType] = useState("");
  const [description, setDescription] = useState("");
  const [config, setConfig] = useState<Record<string, unknown>>({});
  useEffect(() => {
    if (doc.data) {
      setType(doc.data.type);
      setDescription(doc.data.description ?? "");
      setConfig(doc.data.config);
    }
  }, [doc.data]);
  useEffect(() => {
    if (isNew && !type && types.data?.length) setType(types.data[0].name);
  }, [isNew, type, types.data]);

  const write = ability(me.data, isNew ? "create_connection" : "update_connection");
  const check = ability(me.data, "check_connection");
  const discover = ability(me.data, "discover_connection");
  const connectorType = types.data?.find((t) => t.name === type);

  const save = useMutation({
    mutationFn: async (value: Record<string, unknown>) => {
      const body = { type, description: description || null, config: value };
      if (isNew) {
        return request("api/connections", { method: "POST", body: { name: newName, ...body } });
      }
      return request(`api/connections/${encodeURIComponent(name!)}`, {
        method: "PUT", body, headers: { "if-match": doc.data!.etag } });
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ["connections"] });
      await queryClient.invalidateQueries({ queryKey: ["connection"] });
      if (isNew) navigate(`/connections/${encodeURIComponent(newName)}`);
    },
  });
  const test = useMutation({
    mutationFn: () => getJson<CheckResult>(`api/connections/${encodeURIComponent(name!)}/check`, { method: "POST" }),
  });
  const [stream, setStream] = useState("");
  const discovered = useMutation({
    mutationFn: () => {
      let parsed: unknown = null;
      if (stream.trim()) {
        try {
          parsed = JSON.parse(stream);
        } catch (err) {
          throw new Error(`the stream is not JSON: ${(err as Error).message}`);
        }
      }
      return getJson<StreamInfo[]>(`api/connections/${encodeURIComponent(name!)}/discover`, {
        method: "POST", body: parsed === null ? {} : { stream: parsed } });
    },
  });

  if (!isNew && doc.isPending) return <p role="status">Loading connection…</p>;
  return (
    <section>
      <p>
        <Link to="/connections">← Connections</Link>
      </p>
      <h1>{isNew ? "New connection" : `Connection ${name}`}</h1>
      <ErrorBox error={doc.error ?? types.error} title="Could not load" />
      <Unavailable what={isNew ? "Creating a connection" : "Editing this connection"} ability={write} />
      {!isNew && doc.data ? <p className="note">Declared in {doc.data.file}.</p> : null}
      <div className="card">
        <div className="row">
          {isNew ? (
            <label>
              Name
              <br />
              <input value={newName} onChange={(e) => setNewName(e.target.value)} pattern="[a-z][a-z0-9_]*"
                required aria-describedby="name-help" disabled={!write.allowed} />
              <br />
              <small id="name-help" className="note">snake_case: lowercase letters, digits, _</small>
            </label>
          ) : null}
          <label>
            Connector type
            <br />
            <select value={type} onChange={(e) => { setType(e.target.value); setConfig({}); }}
              disabled={!isNew || !write.allowed}>
              {types.data?.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.name} — {t.summary}
                </option>
              ))}
            </select>
          </label>
          <label>
            Description
            <br />
            <input value={description} onChange={(e) => setDescription(e.target.value)} size={40}
              disabled={!write.allowed} />
          </label>
        </div>
        {connectorType ? (
          <ConnectionForm key={type} schema={connectorType.config_schema as Schema} value={config}
            onChange={setConfig} disabled={!write.allowed || save.isPending}
            submitLabel={isNew ? "Create connection" : "Save changes"} onSubmit={(v) => write.allowed && save.mutate(v)} />
        ) : (
          <p role="status">Loading connector types…</p>
        )}
        {save.isPending ? <p role="status">Saving and validating…</p> : null}
        <ErrorBox error={save.error} title="Not saved" />
        {save.isSuccess && !isNew ? <p className="ok" role="status">Saved.</p> : null}
      </div>
      {!isNew ? (
        <div className="card">
          <h2>Test and discover</h2>
          <p className="note">Both run in the worker with the pipelines' environment; nothing is written.</p>
          {discover.allowed ? (
            <label style={{ display: "block", marginBottom: ".5rem" }}>
              Stream to discover (optional; JSON as a source's <code>stream:</code>, e.g.{" "}
              <code>{type === "rest" ? '{"path": "items"}' : type === "sql" ? '{"table": "orders"}' : '{"path": "orders.csv"}'}</code>;
              empty: every stream the connection can list)
              <textarea rows={2} value={stream} onChange={(e) => setStream(e.target.value)} spellCheck={false} />
            </label>
          ) : null}
          <div className="row">
            {check.allowed ? (
              <button type="button" onClick={() => test.mutate()} disabled={test.isPending}>
                {test.isPending ? "Testing…" : "Test connection"}
              </button>
            ) : <Unavailable what="Testing a connection" ability={check} />}
            {discover.allowed ? (
              <button type="button" onClick={() => discovered.mutate()} disabled={discovered.isPending}>
                {discovered.isPending ? "Discovering…" : "Discover"}
              </button>
            ) : <Unavailable what="Discovering streams" ability={discover} />}
          </div>
          <div aria-live="polite">
            {test.data ? (
              <p className={test.data.ok ? "ok" : "error"} role="status" data-testid="check-result">
                {test.data.ok ? "Connection works: " : "Connection failed: "}
                {test.data.message}
              </p>
            ) : null}
            <ErrorBox error={test.error} title="Test failed" />
            <ErrorBox error={discovered.error} title="Discover failed" />
            {discovered.data ? <Streams streams={discovered.data} /> : null}
          </div>
        </div>
      ) : null}
    </section>
  );
}

function Streams({ streams }: { streams: StreamInfo[] }) {
  if (streams.length === 0) return <p>The connection offers no stream it can list; name one in a source spec.</p>;
  return (
    <div data-testid="discover-result">
      {streams.map((s) => (
        <details key={s.name} open={streams.length < 4}>
          <summary>
            {s.name} ({Object.keys(s.columns).length} columns){s.detail ? ` — ${s.detail}` : ""}
          </summary>
          <table>
            <thead>
              <tr>
                <th scope="col">Column</th>
                <th scope="col">Type</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(s.columns).map(([c, t]) => (
                <tr key={c}>
                  <td>{c}</td>
                  <td>{t}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      ))}
    </div>
  );
}
