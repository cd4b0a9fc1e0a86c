import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link } from "react-router-dom";

import { type AlertConfigDocument, ApiError, type ChannelTestResult, getJson, request,
  type WriteResult } from "../../api";
import { ErrorBox, Unavailable } from "../../components/Unavailable";
import { ability, useMe } from "../../me";
import { type Block, type Channel, CHANNEL_TYPES, channelsOf, envName, envRef, newChannel, otherProblems,
  type Problem, problemsAt, type Rule, RULE_KINDS, rulesOf, splitList, withChannel, withRule } from "./model";

function Problems({ problems }: { problems: Problem[] }) {
  if (!problems.length) return null;
  return (
    <ul className="error" role="alert">
      {problems.map((p, i) => <li key={i}>{p.text ?? p.message}</li>)}
    </ul>
  );
}

/** A secret field: only ever the name of an environment variable, shown as the spec writes it. */
function SecretField({ label, value, onChange, disabled }: { label: string; value: unknown;
  onChange: (v: unknown) => void; disabled: boolean }) {
  return (
    <label>
      {label} (environment variable)
      <br />
      <code aria-hidden="true">{"{env: "}</code>
      <input value={envName(value) ?? ""} onChange={(e) => onChange(envRef(e.target.value) ?? { env: "" })}
        pattern="[A-Za-z_][A-Za-z0-9_]*" placeholder="NAME" disabled={disabled} spellCheck={false} />
      <code aria-hidden="true">{"}"}</code>
    </label>
  );
}

function Text({ label, value, onChange, disabled, type = "text" }: { label: string; value: unknown;
  onChange: (v: string) => void; disabled: boolean; type?: string }) {
  return (
    <label>
      {label}
      <br />
      <input type={type} value={value === undefined || value === null ? "" : String(value)}
        onChange={(e) => onChange(e.target.value)} disabled={disabled} />
    </label>
  );
}

function ChannelFields({ channel, set, disabled }: { channel: Channel; set: (c: Channel) => void;
  disabled: boolean }) {
  const put = (key: string, value: unknown) => set({ ...channel, [key]: value });
  if (channel.type === "slack") {
    return <SecretField label="Incoming-webhook URL" value={channel.url} onChange={(v) => put("url", v)} disabled={disabled} />;
  }
  if (channel.type === "email") {
    return (
      <div className="row">
        <Text label="SMTP host" value={channel.host} onChange={(v) => put("host", v)} disabled={disabled} />
        <Text label="Port" type="number" value={channel.port} disabled={disabled}
          onChange={(v) => put("port", v === "" ? undefined : Number(v))} />
        <label>
          <input type="checkbox" checked={channel.starttls !== false} disabled={disabled}
            onChange={(e) => put("starttls", e.target.checked ? undefined : false)} />
          STARTTLS
        </label>
        <Text label="User name" value={typeof channel.username === "string" ? channel.username : ""}
          onChange={(v) => put("username", v || undefined)} disabled={disabled || envName(channel.username) !== undefined} />
        <SecretField label="SMTP password" value={channel.password} disabled={disabled}
          onChange={(v) => put("password", envName(v) ? v : undefined)} />
        <Text label="From" value={channel.sender} onChange={(v) => put("sender", v)} disabled={disabled} />
        <Text label="To (comma-separated)" value={Array.isArray(channel.to) ? channel.to.join(", ") : ""}
          onChange={(v) => put("to", splitList(v))} disabled={disabled} />
      </div>
    );
  }
  const fromEnv = envName(channel.url) !== undefined;
  return (
    <div className="row">
      <label>
        URL given as
        <br />
        <select value={fromEnv ? "env" : "text"} disabled={disabled}
          onChange={(e) => put("url", e.target.value === "env" ? { env: "" } : "")}>
          <option value="env">an environment variable (the URL holds a token)</option>
          <option value="text">a plain URL (no token in it)</option>
        </select>
      </label>
      {fromEnv ? (
        <SecretField label="URL" value={channel.url} onChange={(v) => put("url", v)} disabled={disabled} />
      ) : (
        <Text label="URL" value={channel.url} onChange={(v) => put("url", v)} disabled={disabled} />
      )}
      <SecretField label="Signing key" value={channel.secret} disabled={disabled}
        onChange={(v) => put("secret", envName(v) ? v : undefined)} />
    </div>
  );
}

function RuleFields({ rule, channels, set, disabled }: { rule: Rule; channels: string[]; set: (r: Rule) => void;
  disabled: boolean }) {
  const chosen = rule.channels ?? [];
  const pipelines = Array.isArray(rule.pipelines) ? (rule.pipelines as string[]) : ["*"];
  return (
    <div className="row">
      <label>
        When
        <br />
        <select value={rule.when ?? ""} onChange={(e) => set({ ...rule, when: e.target.value })} disabled={disabled}>
          {RULE_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
        </select>
      </label>
      <fieldset>
        <legend>Channels</legend>
        {channels.map((name) => (
          <label key={name}>
            <input type="checkbox" checked={chosen.includes(name)} disabled={disabled}
              onChange={(e) => set({ ...rule, channels: e.target.checked ? [...chosen, name]
                : chosen.filter((c) => c !== name) })} />
            {name}
          </label>
        ))}
        {chosen.filter((c) => !channels.includes(c)).map((c) => <span key={c} className="note"> {c} (not declared)</span>)}
      </fieldset>
      {rule.when === "check_failure" ? (
        <label>
          Lowest severity
          <br />
          <select value={String(rule.severity ?? "ERROR")} disabled={disabled}
            onChange={(e) => set({ ...rule, severity: e.target.value === "ERROR" ? undefined : e.target.value })}>
            <option value="ERROR">ERROR</option>
            <option value="WARN">WARN (includes ERROR)</option>
          </select>
        </label>
      ) : null}
      <Text label="Pipelines (comma-separated, * = all)" value={pipelines.join(", ")} disabled={disabled}
        onChange={(v) => set({ ...rule, pipelines: v.trim() === "*" || !v.trim() ? undefined : splitList(v) })} />
      <label>
        <input type="checkbox" checked={rule.recovery !== false} disabled={disabled}
          onChange={(e) => set({ ...rule, recovery: e.target.checked ? undefined : false })} />
        Recovery message
      </label>
    </div>
  );
}

function TestResult({ name, result, error }: { name: string; result?: ChannelTestResult; error: unknown }) {
  if (error) return <div data-testid={`test-result-${name}`}><ErrorBox error={error} title="Test not sent" /></div>;
  if (!result) return null;
  return result.delivered ? (
    <p className="ok" role="status" data-testid={`test-result-${result.channel}`}>
      Delivered “{result.title}” (attempt {result.attempts}); it is in the history below.
    </p>
  ) : (
    <p className="error" role="status" data-testid={`test-result-${result.channel}`}>
      Not delivered{result.attempts ? ` after ${result.attempts} attempt(s)` : ""}: {result.error}
    </p>
  );
}

function ChannelTest({ name, dirty }: { name: string; dirty: boolean }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const allowed = ability(me.data, "test_alert_channel");
  const test = useMutation({
    mutationFn: () => getJson<ChannelTestResult>(`api/alerts/channels/${encodeURIComponent(name)}/test`, { method: "POST" }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["alerts-history"] }),
  });
  if (!allowed.allowed) return <Unavailable what="Sending a test" ability={allowed} />;
  return (
    <div>
      <button type="button" onClick={() => test.mutate()} disabled={test.isPending || dirty}
        aria-label={`Send test through ${name}`}>
        {test.isPending ? "Sending…" : "Send test"}
      </button>
      {dirty ? <span className="note"> Save first: the test uses the saved channel.</span> : null}
      <TestResult name={name} result={test.data} error={test.error} />
    </div>
  );
}

export default function AlertConfig() {
  const me = useMe();
  const queryClient = useQueryClient();
  const doc = useQuery({ queryKey: ["alert-config"], queryFn: () => getJson<AlertConfigDocument>("api/alerts/config") });
  const [draft, setDraft] = useState<Block>({});
  const [newName, setNewName] = useState("");
  const [newType, setNewType] = useState<string>("webhook");
  useEffect(() => {
    if (doc.data) setDraft(doc.data.alerts);
  }, [doc.data]);
  const write = ability(me.data, "update_alert_config");
  const save = useMutation({
    mutationFn: async () => {
      const response = await request("api/alerts/config", { method: "PUT", body: { alerts: draft },
        headers: { "if-match": doc.data!.etag } });
      return (await response.json()) as WriteResult;
    },
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["alert-config"] }),
  });

  if (doc.isPending) return <p role="status">Loading the alert configuration…</p>;
  if (!doc.data) return <ErrorBox error={doc.error} title="Could not load the alert configuration" />;
  const d = doc.data;
  const readOnly = !write.allowed || !d.own_file;
  const disabled = readOnly || save.isPending;
  const dirty = JSON.stringify(draft) !== JSON.stringify(d.alerts);
  const problems = save.error instanceof ApiError ? save.error.problems : undefined;
  const channels = channelsOf(draft);
  const names = Object.keys(channels);
  const rules = rulesOf(draft);
  const kept = ["quiet_hours", "delivery"].filter((k) => draft[k] !== undefined);

  return (
    <form onSubmit={(e) => { e.preventDefault(); if (!readOnly) save.mutate(); }} aria-label="Alert configuration">
      <p className="note">
        The global <code>alerts:</code> block in <code>{d.file}</code>{d.exists ? "" : " (created on first save)"}
        {d.version ? `, version ${d.version}` : ""}. Secrets are names of environment variables, written{" "}
        <code>{"{env: NAME}"}</code>, read by the worker and the alert sensors, never here
        {d.secret_names.includes("*") ? "" : ` (allowed: ${d.secret_names.join(", ")})`}.
      </p>
      <Unavailable what="Editing the alert configuration" ability={write} />
      {!d.own_file ? (
        <p className="unavailable" role="note">
          The block is declared in {d.file} together with other things: edit that file in the builder or move the
          block to an alerts.yaml of its own.
        </p>
      ) : null}
      {d.comments && !readOnly ? <p className="note">Saving rewrites {d.file}; its comments are not kept.</p> : null}
      {d.inline_secrets.length ? (
        <p className="error" role="alert">
          Values written inline that look like secrets (masked here): {d.inline_secrets.join(", ")}. Replace them
          with environment variables before saving.
        </p>
      ) : null}
      {kept.length ? <p className="note">Kept as written: {kept.join(", ")} (see docs/alerts.md).</p> : null}
      <label>
        Link base (ui_url)
        <br />
        <input value={String(draft.ui_url ?? "")} size={40} disabled={disabled}
          onChange={(e) => setDraft({ ...draft, ui_url: e.target.value || undefined })} />
      </label>

      <h2>Channels</h2>
      {names.length === 0 ? <p>No channel yet.</p> : null}
      {names.map((name) => (
        <fieldset key={name} className="card">
          <legend>Channel {name} ({channels[name].type})</legend>
          <ChannelFields channel={channels[name]} disabled={disabled}
            set={(c) => setDraft(withChannel(draft, name, c))} />
          <Problems problems={problemsAt(problems, `alerts.channels.${name}`)} />
          <div className="row">
            <ChannelTest name={name} dirty={dirty || !(name in channelsOf(d.alerts))} />
            {!readOnly ? (
              <button type="button" onClick={() => setDraft(withChannel(draft, name, undefined))}>
                Remove channel {name}
              </button>
            ) : null}
          </div>
        </fieldset>
      ))}
      {!readOnly ? (
        <div className="row">
          <label>
            New channel name
            <br />
            <input value={newName} onChange={(e) => setNewName(e.target.value)} pattern="[A-Za-z0-9_.\-]+" />
          </label>
          <label>
            Type
            <br />
            <select value={newType} onChange={(e) => setNewType(e.target.value)}>
              {CHANNEL_TYPES.map((t) => <option key={t} value={t}>{t}</option>)}
            </select>
          </label>
          <button type="button" disabled={!newName.trim() || newName.trim() in channels}
            onClick={() => { setDraft(withChannel(draft, newName.trim(), newChannel(newType))); setNewName(""); }}>
            Add channel
          </button>
        </div>
      ) : null}

      <h2>Rules</h2>
      {rules.length === 0 ? <p>No rule yet: nothing is sent until a rule names a channel.</p> : null}
      {rules.map((rule, i) => (
        <fieldset key={i} className="card">
          <legend>Rule {i + 1}</legend>
          <RuleFields rule={rule} channels={names} disabled={disabled} set={(r) => setDraft(withRule(draft, i, r))} />
          <Problems problems={problemsAt(problems, `alerts.rules[${i}]`)} />
          {!readOnly ? (
            <button type="button" onClick={() => setDraft(withRule(draft, i, undefined))}>Remove rule {i + 1}</button>
          ) : null}
        </fieldset>
      ))}
      {!readOnly ? (
        <p>
          <button type="button" onClick={() => setDraft(withRule(draft, rules.length,
            { when: "run_failure", channels: names.slice(0, 1) }))}>
            Add rule
          </button>
        </p>
      ) : null}

      {!readOnly ? (
        <p>
          <button type="submit" className="primary" disabled={!dirty || save.isPending}>
            {save.isPending ? "Saving and validating…" : "Save alert configuration"}
          </button>{" "}
          {dirty ? <button type="button" onClick={() => setDraft(d.alerts)}>Discard changes</button> : null}
        </p>
      ) : null}
      {save.error ? (
        <>
          <ErrorBox error={save.error instanceof ApiError ? new ApiError(save.error.status, save.error.detail,
            save.error.missingPermission) : save.error} title="Not saved" />
          <Problems problems={otherProblems(problems, draft)} />
        </>
      ) : null}
      {save.isSuccess && !dirty ? (
        <p className="ok" role="status">Saved as version {save.data.version} of {save.data.file}.</p>
      ) : null}

      <h2>Pipelines' own rules</h2>
      {d.pipelines.length === 0 ? <p>No pipeline declares rules of its own.</p> : (
        <table>
          <thead>
            <tr>
              <th scope="col">Pipeline</th>
              <th scope="col">Also the rules above</th>
              <th scope="col">Its rules</th>
            </tr>
          </thead>
          <tbody>
            {d.pipelines.map((p) => (
              <tr key={`${p.file}:${p.pipeline}`}>
                <td><Link to={`/builder/${encodeURIComponent(p.pipeline)}`}>{p.pipeline}</Link> <span className="note">({p.file})</span></td>
                <td>{p.inherit ? "yes" : "no (inherit: false)"}</td>
                <td>{p.rules.map((r, i) => <div key={i}><code>{JSON.stringify(r)}</code></div>)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </form>
  );
}
