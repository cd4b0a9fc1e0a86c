import { useQuery } from "@tanstack/react-query";
import { useState } from "react";

import { type AlertEntry, getJson, proxyUrl } from "../api";
import { ErrorBox } from "../components/Unavailable";
import AlertConfig from "./alerts/AlertConfig";

export default function Alerts() {
  const [status, setStatus] = useState("");
  const history = useQuery({
    queryKey: ["alerts-history", status],
    refetchInterval: 30_000,
    queryFn: () => getJson<AlertEntry[]>(`api/alerts/history?limit=200${status ? `&status=${status}` : ""}`),
  });
  return (
    <section>
      <h1>Alerts</h1>
      <p className="note">
        Where alerts go (channels), when they are sent (rules), a test message through each channel, and every alert
        the platform sent, held, de-duplicated or resolved. See docs/alerts.md.
      </p>
      <AlertConfig />
      <h2>History</h2>
      <label>
        Status
        <br />
        <select value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">Any</option>
          {["sent", "failed", "deduplicated", "resolved", "held"].map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </label>
      <ErrorBox error={history.error} title="Could not load the alert history" />
      {history.data && history.data.length === 0 ? <p>No alert yet: alerts appear here when a run or check fails.</p> : null}
      {history.data?.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">When (UTC)</th>
              <th scope="col">Status</th>
              <th scope="col">Kind</th>
              <th scope="col">Pipeline</th>
              <th scope="col">Channel</th>
              <th scope="col">Alert</th>
            </tr>
          </thead>
          <tbody>
            {history.data.map((a) => (
              <tr key={a.id}>
                <td>{a.at.replace("T", " ").slice(0, 19)}</td>
                <td>{a.status}</td>
                <td>{a.kind}</td>
                <td>{a.pipeline ?? "—"}</td>
                <td>{a.channel ?? "—"}</td>
                <td>
                  {a.title}
                  {a.run_id ? <> · <a href={proxyUrl(`runs/${a.run_id}`)}>run in Dagster</a></> : null}
                  {a.detail ? <div className="note">{a.detail}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
