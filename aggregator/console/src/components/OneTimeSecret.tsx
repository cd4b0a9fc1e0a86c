import { useId, useState } from "react";

/** A password or token secret the server hands out once: shown in a read-only field to copy, then gone when
 * dismissed (it is kept nowhere else: not in the query cache, not in the URL, not in storage). */
export function OneTimeSecret({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const id = useId();
  const [copied, setCopied] = useState<"" | "copied" | "failed">("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied("copied");
    } catch {
      // No clipboard permission (or no secure context): the field stays selectable for a manual copy.
      setCopied("failed");
    }
  };
  return (
    <div className="ok one-time" role="region" aria-label={label}>
      <label htmlFor={id}>
        <strong>{label}</strong> — shown once; copy it now, it cannot be shown again.
      </label>
      <div className="row">
        <input id={id} readOnly value={value} size={Math.min(60, value.length + 2)} spellCheck={false}
          autoComplete="off" onFocus={(e) => e.currentTarget.select()} data-testid="one-time-secret" />
        <button type="button" onClick={copy}>Copy</button>
        <button type="button" onClick={onDone}>Done</button>
      </div>
      <span role="status">{copied === "copied" ? "Copied." : copied === "failed" ? "Copy it by hand: the browser refused the clipboard." : ""}</span>
    </div>
  );
}
