import type { ReactNode } from "react";
import { NavLink } from "react-router-dom";

import { proxyUrl } from "./api";
import { useMe } from "./me";

const PAGES: [string, string][] = [
  ["/overview", "Overview"],
  ["/connections", "Connections"],
  ["/builder", "Pipeline builder"],
  ["/uploads", "Uploads"],
  ["/logs", "Logs"],
  ["/alerts", "Alerts"],
  ["/analytics", "Analytics"],
  ["/admin", "Administration"],
];

export function Layout({ children }: { children: ReactNode }) {
  const me = useMe();
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Data Aggregator · Console</span>
        <a href={proxyUrl("")}>Dagster UI</a>
        <span className="who" aria-live="polite">
          {me.data ? `${me.data.user} (${me.data.role}${me.data.scope ? `: ${me.data.scope.join(", ")}` : ""})` : ""}
        </span>
        <form method="post" action={proxyUrl("_auth/logout")}>
          <button type="submit">Sign out</button>
        </form>
      </header>
      <nav aria-label="Console pages" className="side">
        <ul>
          {PAGES.map(([to, label]) => (
            <li key={to}>
              <NavLink to={to}>{label}</NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {me.error ? <p role="alert">Could not load who you are: {String(me.error)}</p> : children}
      </main>
    </div>
  );
}
