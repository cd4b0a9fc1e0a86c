// The global `alerts:` block as the page edits it: plain objects as the API returns them, changed in place by
// copy, so keys the page does not show (quiet hours, delivery, options it does not know) are kept as written.

export type Block = Record<string, unknown>;
export type Channel = Record<string, unknown> & { type?: string };
export type Rule = Record<string, unknown> & { when?: string; channels?: string[] };

export interface Problem {
  text?: string;
  message?: string;
  field?: string;
  line?: number | null;
}

export const CHANNEL_TYPES = ["webhook", "slack", "email"] as const;
export const RULE_KINDS = ["run_failure", "run_success", "check_failure", "freshness", "spec_error",
  "schema_change"] as const;

/** `{env: NAME}` as the spec writes a secret, or undefined for anything else. */
export function envName(value: unknown): string | undefined {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const env = (value as { env?: unknown }).env;
    if (keys.length === 1 && typeof env === "string") return env;
  }
  return undefined;
}

export function envRef(name: string): { env: string } | undefined {
  return name.trim() ? { env: name.trim() } : undefined;
}

export function channelsOf(block: Block): Record<string, Channel> {
  const channels = block.channels;
  return channels && typeof channels === "object" && !Array.isArray(channels) ? (channels as Record<string, Channel>) : {};
}

export function rulesOf(block: Block): Rule[] {
  return Array.isArray(block.rules) ? (block.rules as Rule[]) : [];
}

/** A new channel of `type` with the fields its type requires, secrets as empty variable names to fill in. */
export function newChannel(type: string): Channel {
  if (type === "slack") return { type, url: { env: "" } };
  if (type === "email") return { type, host: "", port: 587, sender: "", to: [] };
  return { type: "webhook", url: { env: "" } };
}

/** `value` without keys whose value is undefined (an emptied optional field is left out of the file). */
export function compact<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export function withChannel(block: Block, name: string, channel: Channel | undefined): Block {
  const channels = { ...channelsOf(block) };
  if (channel === undefined) delete channels[name];
  else channels[name] = compact(channel);
  return { ...block, channels };
}

export function withRule(block: Block, index: number, rule: Rule | undefined): Block {
  const rules = [...rulesOf(block)];
  if (rule === undefined) rules.splice(index, 1);
  else if (index >= rules.length) rules.push(compact(rule));
  else rules[index] = compact(rule);
  return { ...block, rules };
}

/** The server's problems (`file:line: field: message`) that belong to one channel or rule, by field path:
 * `alerts.channels.<name>[.…]`, `alerts.rules[<i>][.…]`. */
export function problemsAt(problems: Problem[] | undefined, prefix: string): Problem[] {
  return (problems ?? []).filter((p) => {
    const field = p.field ?? "";
    return field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`);
  });
}

/** Problems no channel or rule shows: listed once above the form. */
export function otherProblems(problems: Problem[] | undefined, block: Block): Problem[] {
  const shown = new Set<Problem>();
  for (const name of Object.keys(channelsOf(block))) problemsAt(problems, `alerts.channels.${name}`).forEach((p) => shown.add(p));
  rulesOf(block).forEach((_, i) => problemsAt(problems, `alerts.rules[${i}]`).forEach((p) => shown.add(p)));
  return (problems ?? []).filter((p) => !shown.has(p));
}

export function splitList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}
