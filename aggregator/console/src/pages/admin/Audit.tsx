import { useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { type AuditRecord, getJson } from "../../api";
import { ErrorBox, Unavailable } from "../../components/Unavailable";
import { ability, useMe } from "../../me";
import { when } from "./common";

export function Audit() {
  const me = useMe();
  const may = ability(me.data, "read_audit");
  const [decision, setDecision] = useState("");
  const [username, setUsername] = useState("");
  const audit = useQuery({
    queryKey: ["audit", decision, username],
    enabled: may.allowed,
    queryFn: () => {
      const p = new URLSearchParams({ limit: "200" });
      if (decision) p.set("decision", decision);
      if (username) p.set("username", username);
      return getJson<AuditRecord[]>(`_auth/api/audit?${p}`);
    },
  });
  return (
    <>
      <p className="note">Every sign-in, write and refusal, newest first (user and token changes have event admin).</p>
      <Unavailable what="The audit log" ability={may} />
      {may.allowed ? (
        <>
          <div className="row">
            <label>
              Decision
              <br />
              <select value={decision} onChange={(e) => setDecision(e.target.value)}>
                <option value="">Any</option>
                <option value="allow">allow</option>
                <option value="deny">deny</option>
              </select>
            </label>
            <label>
              User
              <br />
              <input value={username} onChange={(e) => setUsername(e.target.value)} />
            </label>
          </div>
          <ErrorBox error={audit.error} title="Could not read the audit log" />
          {audit.isPending ? <p role="status">Loading…</p> : null}
          <table>
            <thead>
              <tr>
                <th scope="col">When (UTC)</th>
                <th scope="col">User</th>
                <th scope="col">Event</th>
                <th scope="col">Operation</th>
                <th scope="col">Targets</th>
                <th scope="col">Decision</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {audit.data?.map((r, i) => (
                <tr key={i}>
                  <td>{when(r.ts)}</td>
                  <td>{r.username ?? "—"}{r.role ? ` (${r.role})` : ""}</td>
                  <td>{r.event}</td>
                  <td>{r.operation}</td>
                  <td>{Object.entries(r.targets ?? {}).map(([k, v]) => `${k}: ${v.join(", ")}`).join("; ")}</td>
                  <td>{r.decision}</td>
                  <td>{r.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </>
  );
}
