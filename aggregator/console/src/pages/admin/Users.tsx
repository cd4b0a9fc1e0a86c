import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, type FormEvent, useState } from "react";

import { getJson, type RoleName, type UserInfo } from "../../api";
import { OneTimeSecret } from "../../components/OneTimeSecret";
import { ErrorBox, Unavailable } from "../../components/Unavailable";
import { ability, useMe } from "../../me";
import { parseScope, ROLES, scopeText, when } from "./common";

interface Secret {
  label: string;
  value: string;
}

const userPath = (name: string) => `_auth/api/users/${encodeURIComponent(name)}`;

export function Users() {
  const me = useMe();
  const list = ability(me.data, "list_users");
  const create = ability(me.data, "create_user");
  const users = useQuery({ queryKey: ["users"], enabled: list.allowed,
    queryFn: () => getJson<UserInfo[]>("_auth/api/users") });
  // The one-time secret lives only in this state: dismissing it (or leaving the tab) drops it for good.
  const [secret, setSecret] = useState<Secret | null>(null);
  return (
    <>
      <Unavailable what="User administration" ability={list} />
      {secret ? <OneTimeSecret label={secret.label} value={secret.value} onDone={() => setSecret(null)} /> : null}
      {create.allowed ? <CreateUser onSecret={setSecret} /> : null}
      {list.allowed ? (
        <>
          <ErrorBox error={users.error} title="Could not list the users" />
          {users.isPending ? <p role="status">Loading…</p> : null}
          {users.data?.length === 0 ? <p className="note">No users yet: add one above.</p> : null}
          <table>
            <caption className="note">Changing a user's role, scope, state or password ends their sessions.</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Scope</th>
                <th scope="col">State</th>
                <th scope="col">Sign-in</th>
                <th scope="col">Added (UTC)</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {users.data?.map((u) => <UserRow key={u.username} user={u} onSecret={setSecret} />)}
            </tbody>
          </table>
        </>
      ) : null}
    </>
  );
}

function CreateUser({ onSecret }: { onSecret: (s: Secret) => void }) {
  const queryClient = useQueryClient();
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<RoleName>("viewer");
  const [scope, setScope] = useState("");
  const [generate, setGenerate] = useState(true);
  const [password, setPassword] = useState("");
  const save = useMutation({
    mutationFn: () => getJson<{ user: UserInfo; password: string | null }>("_auth/api/users", { method: "POST",
      body: { username, role, scope: parseScope(scope), ...(generate ? { generate_password: true } : { password }) } }),
    onSuccess: async (made) => {
      if (made.password) onSecret({ label: `Password of ${made.user.username}`, value: made.password });
      setUsername("");
      setScope("");
      setPassword("");
      await queryClient.invalidateQueries({ queryKey: ["users"] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="create-user-title">
      <h2 id="create-user-title">Add a user</h2>
      <div className="row">
        <label>
          Username
          <br />
          <input value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
        </label>
        <label>
          Role
          <br />
          <select value={role} onChange={(e) => setRole(e.target.value as RoleName)}>
            {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
          </select>
        </label>
        <label>
          Scope (pipelines, comma-separated; blank for all)
          <br />
          <input value={scope} onChange={(e) => setScope(e.target.value)} placeholder="all pipelines" />
        </label>
      </div>
      <div className="row">
        <label>
          <input type="checkbox" checked={generate} onChange={(e) => setGenerate(e.target.checked)} /> Generate a
          password (shown once)
        </label>
        {generate ? null : (
          <label>
            Password (at least 12 characters)
            <br />
            <input type="password" value={password} onChange={(e) => setPassword(e.target.value)}
              autoComplete="new-password" required minLength={12} />
          </label>
        )}
        <button type="submit" className="primary" disabled={save.isPending}>Add user</button>
      </div>
      <ErrorBox error={save.error} title="Could not add the user" />
    </form>
  );
}

function UserRow({ user, onSecret }: { user: UserInfo; onSecret: (s: Secret) => void }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const mayRole = ability(me.data, "set_user_role");
  const mayDisable = ability(me.data, "set_user_disabled");
  const mayReset = ability(me.data, "reset_password");
  const [editing, setEditing] = useState(false);
  const [role, setRole] = useState<RoleName>(user.role);
  const [scope, setScope] = useState(user.scope?.join(", ") ?? "");
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["users"] });
  const change = useMutation({
    mutationFn: (action: "role" | "disable" | "enable" | "password") => {
      if (action === "role") {
        return getJson<unknown>(`${userPath(user.username)}/role`, { method: "PUT",
          body: { role, scope: parseScope(scope) } });
      }
      if (action === "password") {
        return getJson<{ password: string | null }>(`${userPath(user.username)}/password`, { method: "POST",
          body: { generate_password: true } });
      }
      return getJson<unknown>(`${userPath(user.username)}/disabled`, { method: "PUT",
        body: { disabled: action === "disable" } });
    },
    onSuccess: async (answer, action) => {
      if (action === "password") {
        const made = answer as { password: string | null };
        if (made.password) onSecret({ label: `New password of ${user.username}`, value: made.password });
      }
      if (action === "role") setEditing(false);
      await refresh();
    },
  });
  return (
    <Fragment>
      <tr>
        <th scope="row">{user.username}</th>
        {editing ? (
          <>
            <td>
              <select aria-label={`Role of ${user.username}`} value={role}
                onChange={(e) => setRole(e.target.value as RoleName)}>
                {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
              </select>
            </td>
            <td>
              <input aria-label={`Scope of ${user.username}`} value={scope} placeholder="all pipelines"
                onChange={(e) => setScope(e.target.value)} />
            </td>
          </>
        ) : (
          <>
            <td>{user.role}</td>
            <td>{scopeText(user.scope)}</td>
          </>
        )}
        <td>{user.disabled ? "disabled" : "enabled"}</td>
        <td>{user.source === "local" ? "password" : user.source}</td>
        <td>{when(user.created_at)}</td>
        <td>
          <div className="row">
            {mayRole.allowed && editing ? (
              <>
                <button type="button" className="primary" onClick={() => change.mutate("role")}
                  disabled={change.isPending}>Save</button>
                <button type="button" onClick={() => { setEditing(false); setRole(user.role);
                  setScope(user.scope?.join(", ") ?? ""); }}>Cancel</button>
              </>
            ) : null}
            {mayRole.allowed && !editing ? (
              <button type="button" onClick={() => setEditing(true)}
                aria-label={`Edit role and scope of ${user.username}`}>Edit role</button>
            ) : null}
            {mayDisable.allowed ? (
              <button type="button" disabled={change.isPending}
                onClick={() => change.mutate(user.disabled ? "enable" : "disable")}
                aria-label={`${user.disabled ? "Enable" : "Disable"} ${user.username}`}>
                {user.disabled ? "Enable" : "Disable"}
              </button>
            ) : null}
            {mayReset.allowed && user.source === "local" ? (
              <button type="button" disabled={change.isPending} onClick={() => change.mutate("password")}
                aria-label={`Reset password of ${user.username}`}>Reset password</button>
            ) : null}
          </div>
        </td>
      </tr>
      {change.error ? (
        <tr>
          <td colSpan={7}>
            <ErrorBox error={change.error} title={`Could not change ${user.username}`} />
          </td>
        </tr>
      ) : null}
    </Fragment>
  );
}
