import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, type FormEvent, useState } from "react";

import { getJson, type RoleName, type TokenInfo, type UserInfo } from "../../api";
import { OneTimeSecret } from "../../components/OneTimeSecret";
import { ErrorBox, Unavailable } from "../../components/Unavailable";
import { ability, useMe } from "../../me";
import { parseScope, ROLES, scopeText, when } from "./common";

function state(t: TokenInfo, now: number): string {
  if (t.revoked_at !== null) return "revoked";
  if (t.expires_at !== null && t.expires_at < now) return "expired";
  return "active";
}

export function Tokens() {
  const me = useMe();
  const list = ability(me.data, "list_tokens");
  const create = ability(me.data, "create_token");
  const [owner, setOwner] = useState("");
  const tokens = useQuery({ queryKey: ["tokens", owner], enabled: list.allowed,
    queryFn: () => getJson<TokenInfo[]>(`_auth/api/tokens${owner ? `?username=${encodeURIComponent(owner)}` : ""}`) });
  const users = useQuery({ queryKey: ["users"], enabled: ability(me.data, "list_users").allowed,
    queryFn: () => getJson<UserInfo[]>("_auth/api/users") });
  // Only in this state, never cached: gone once dismissed.
  const [secret, setSecret] = useState<{ label: string; value: string } | null>(null);
  const now = Date.now() / 1000;
  return (
    <>
      <Unavailable what="Token administration" ability={list} />
      {secret ? <OneTimeSecret label={secret.label} value={secret.value} onDone={() => setSecret(null)} /> : null}
      {create.allowed ? <CreateToken users={users.data ?? []} onSecret={setSecret} /> : null}
      {list.allowed ? (
        <>
          <div className="row">
            <label>
              Show the tokens of
              <br />
              <select value={owner} onChange={(e) => setOwner(e.target.value)}>
                <option value="">Everyone</option>
                {users.data?.map((u) => <option key={u.username} value={u.username}>{u.username}</option>)}
              </select>
            </label>
          </div>
          <ErrorBox error={tokens.error} title="Could not list the tokens" />
          {tokens.isPending ? <p role="status">Loading…</p> : null}
          {tokens.data?.length === 0 ? <p className="note">No tokens yet: create one above for a script.</p> : null}
          <table>
            <caption className="note">Secrets are never listed: only shown once, when a token is created.</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Owner</th>
                <th scope="col">Role</th>
                <th scope="col">Scope</th>
                <th scope="col">Description</th>
                <th scope="col">Created (UTC)</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {tokens.data?.map((t) => <TokenRow key={t.id} token={t} state={state(t, now)} />)}
            </tbody>
          </table>
        </>
      ) : null}
    </>
  );
}

function CreateToken({ users, onSecret }: { users: UserInfo[];
  onSecret: (s: { label: string; value: string }) => void }) {
  const queryClient = useQueryClient();
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<"" | RoleName>("");
  const [scope, setScope] = useState("");
  const [days, setDays] = useState("90");
  const [description, setDescription] = useState("");
  const save = useMutation({
    mutationFn: () => getJson<{ token: TokenInfo; secret: string }>("_auth/api/tokens", { method: "POST", body: {
      username, role: role || null, scope: parseScope(scope), expires_in_days: days ? Number(days) : null,
      description } }),
    onSuccess: async (made) => {
      onSecret({ label: `Token ${made.token.id} for ${made.token.username}`, value: made.secret });
      setDescription("");
      await queryClient.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  const enabled = users.filter((u) => !u.disabled);
  return (
    <form className="card" onSubmit={submit} aria-labelledby="create-token-title">
      <h2 id="create-token-title">Create a token</h2>
      <div className="row">
        <label>
          Owner
          <br />
          <select value={username} onChange={(e) => setUsername(e.target.value)} required>
            <option value="">Choose a user…</option>
            {enabled.map((u) => <option key={u.username} value={u.username}>{u.username} ({u.role})</option>)}
          </select>
        </label>
        <label>
          Role
          <br />
          <select value={role} onChange={(e) => setRole(e.target.value as "" | RoleName)}>
            <option value="">The owner's role</option>
            {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
          </select>
        </label>
        <label>
          Scope (blank: the owner's)
          <br />
          <input value={scope} onChange={(e) => setScope(e.target.value)} placeholder="the owner's scope" />
        </label>
        <label>
          Expires after (days; blank: never)
          <br />
          <input type="number" min={1} max={3650} value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
        <label>
          Description
          <br />
          <input value={description} onChange={(e) => setDescription(e.target.value)} maxLength={500} />
        </label>
        <button type="submit" className="primary" disabled={save.isPending}>Create token</button>
      </div>
      <ErrorBox error={save.error} title="Could not create the token" />
    </form>
  );
}

function TokenRow({ token, state }: { token: TokenInfo; state: string }) {
  const me = useMe();
  const queryClient = useQueryClient();
  const mayRevoke = ability(me.data, "revoke_token");
  const [confirming, setConfirming] = useState(false);
  const revoke = useMutation({
    mutationFn: () => getJson<TokenInfo>(`_auth/api/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" }),
    onSuccess: async () => {
      setConfirming(false);
      await queryClient.invalidateQueries({ queryKey: ["tokens"] });
    },
  });
  return (
    <Fragment>
      <tr>
        <th scope="row"><code>{token.id}</code></th>
        <td>{token.username}</td>
        <td>{token.role}</td>
        <td>{scopeText(token.scope)}</td>
        <td>{token.description}</td>
        <td>{when(token.created_at)}</td>
        <td>{token.expires_at === null ? "never" : when(token.expires_at)}</td>
        <td>{when(token.last_used)}</td>
        <td>{state}</td>
        <td>
          {mayRevoke.allowed && token.revoked_at === null && !confirming ? (
            <button type="button" onClick={() => setConfirming(true)}
              aria-label={`Revoke token ${token.id}`}>Revoke</button>
          ) : null}
          {confirming ? (
            <div className="row" role="group" aria-label={`Confirm revoking token ${token.id}`}>
              <span>Revoke {token.id}? Scripts using it stop working at once.</span>
              <button type="button" className="primary" onClick={() => revoke.mutate()}
                disabled={revoke.isPending}>Yes, revoke</button>
              <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
            </div>
          ) : null}
        </td>
      </tr>
      {revoke.error ? (
        <tr>
          <td colSpan={10}>
            <ErrorBox error={revoke.error} title={`Could not revoke ${token.id}`} />
          </td>
        </tr>
      ) : null}
    </Fragment>
  );
}
