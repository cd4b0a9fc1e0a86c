import { type KeyboardEvent, useState } from "react";

import { Unavailable } from "../components/Unavailable";
import { ability, useMe } from "../me";
import { Audit } from "./admin/Audit";
import { Tokens } from "./admin/Tokens";
import { Users } from "./admin/Users";

const TABS = [
  ["users", "Users", "list_users"],
  ["tokens", "Tokens", "list_tokens"],
  ["audit", "Audit", "read_audit"],
] as const;
type Tab = (typeof TABS)[number][0];

export default function Administration() {
  const me = useMe();
  const [tab, setTab] = useState<Tab>("users");
  // The page's controls exist only for whom the server allows them (abilities from /_auth/me); the API
  // refuses the rest anyway.
  const allowed = TABS.filter(([, , op]) => ability(me.data, op).allowed);
  const onKey = (e: KeyboardEvent) => {
    const i = allowed.findIndex(([id]) => id === tab);
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step || i < 0) return;
    const next = allowed[(i + step + allowed.length) % allowed.length][0];
    setTab(next);
    document.getElementById(`admin-tab-${next}`)?.focus();
  };
  const current = allowed.find(([id]) => id === tab) ?? allowed[0];
  return (
    <section>
      <h1>Administration</h1>
      <p className="note">
        Users, their roles and pipeline scopes, API tokens for scripts, and the audit log. The same changes can be
        made on the server with <code>aggregator users</code> and <code>aggregator tokens</code> (docs/security.md).
      </p>
      {me.data && allowed.length === 0 ? (
        <Unavailable what="Administration" ability={ability(me.data, "list_users")} />
      ) : null}
      {current ? (
        <>
          <div role="tablist" aria-label="Administration" className="tabs" onKeyDown={onKey}>
            {allowed.map(([id, label]) => (
              <button key={id} type="button" role="tab" id={`admin-tab-${id}`} aria-selected={id === current[0]}
                aria-controls={`admin-panel-${id}`} tabIndex={id === current[0] ? 0 : -1} onClick={() => setTab(id)}>
                {label}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`admin-panel-${current[0]}`} aria-labelledby={`admin-tab-${current[0]}`}>
            {current[0] === "users" ? <Users /> : current[0] === "tokens" ? <Tokens /> : <Audit />}
          </div>
        </>
      ) : null}
    </section>
  );
}
