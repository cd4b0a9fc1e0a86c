import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router-dom";

import { type ConnectionInfo, getJson } from "../api";
import { ErrorBox, Unavailable } from "../components/Unavailable";
import { ability, useMe } from "../me";

export default function Connections() {
  const me = useMe();
  const list = useQuery({ queryKey: ["connections"], queryFn: () => getJson<ConnectionInfo[]>("api/connections") });
  const create = ability(me.data, "create_connection");
  return (
    <section>
      <h1>Connections</h1>
      <p className="note">
        The systems pipelines read from and write to. Each is a spec file; secrets are references to environment
        variables, never values.
      </p>
      {create.allowed ? (
        <p>
          <Link to="/connections/new" className="button">
            New connection
          </Link>
        </p>
      ) : (
        <Unavailable what="Creating a connection" ability={create} />
      )}
      <ErrorBox error={list.error} title="Could not list connections" />
      {list.isPending ? <p role="status">Loading connections…</p> : null}
      {list.data && list.data.length === 0 ? (
        <p>No connection is declared yet. {create.allowed ? "Create the first one above." : ""}</p>
      ) : null}
      {list.data && list.data.length > 0 ? (
        <table>
          <caption className="note">{list.data.length} connections</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Declared in</th>
              <th scope="col">Used by</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((c) => (
              <tr key={c.name}>
                <td>
                  <Link to={`/connections/${encodeURIComponent(c.name)}`}>{c.name}</Link>
                </td>
                <td>{c.type}</td>
                <td>{c.file}</td>
                <td>{c.used_by.join(", ") || "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
