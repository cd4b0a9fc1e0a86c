import type { Ability } from "../api";

/** Says why an action the user cannot take is not offered (the server's reason: the role or grant it needs). */
export function Unavailable({ what, ability }: { what: string; ability: Ability }) {
  if (ability.allowed) return null;
  return (
    <p className="unavailable" role="note">
      {what} is not available to you: {ability.reason}.
    </p>
  );
}

export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error as { detail?: string; message?: string; missingPermission?: string; status?: number;
    problems?: { message?: string }[] };
  return (
    <div className="error" role="alert">
      <strong>{title ?? "Failed"}{e.status ? ` (${e.status})` : ""}:</strong> {e.detail ?? e.message ?? String(error)}
      {e.missingPermission ? <div>Missing permission: {e.missingPermission}</div> : null}
      {e.problems?.length ? (
        <ul>
          {e.problems.map((p, i) => (
            <li key={i}>{p.message ?? JSON.stringify(p)}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
