// The management API as the Console calls it: same origin, the session cookie, one error shape.
// Paths are relative to the proxy's root, which is the parent of the Console's <base href> (any prefix).

export class ApiError extends Error {
  constructor(
    public status: number,
    public detail: string,
    public missingPermission?: string,
    public problems?: { message?: string; file?: string; line?: number; field?: string }[],
  ) {
    super(detail);
  }
}

export function proxyRoot(): string {
  // document.baseURI is ".../console/"; the proxy's own routes (api/, _auth/, graphql) sit one level up.
  return new URL("..", document.baseURI).pathname;
}

export function proxyUrl(path: string): string {
  return proxyRoot() + path.replace(/^\//, "");
}

export function signInUrl(): string {
  return proxyUrl(`_auth/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
}

async function failure(response: Response): Promise<ApiError> {
  let detail = `${response.status} ${response.statusText}`;
  let missing: string | undefined;
  let problems: ApiError["problems"];
  try {
    const body = await response.json();
    if (body && typeof body === "object") {
      detail = String(body.detail ?? body.error ?? detail);
      missing = body.missing_permission;
      problems = body.problems;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, detail, missing, problems);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  raw?: BodyInit;
  signal?: AbortSignal;
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  let body: BodyInit | undefined = options.raw;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const response = await fetch(proxyUrl(path), {
    method: options.method ?? "GET",
    headers,
    body,
    credentials: "same-origin",
    signal: options.signal,
  });
  if (response.status === 401) {
    // The session ended (idle timeout, sign-out elsewhere): sign in again and come back here.
    window.location.assign(signInUrl());
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options);
  return (await response.json()) as T;
}

export async function graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const body = await getJson<{ data?: T; errors?: { message: string }[] }>("graphql", {
    method: "POST",
    body: { query, variables },
  });
  if (body.errors?.length) throw new ApiError(200, body.errors.map((e) => e.message).join("; "));
  return body.data as T;
}

// ------------------------------------------------------------------------------------------------ types

export interface Ability {
  allowed: boolean;
  reason: string | null;
}

export interface Me {
  user: string;
  role: "viewer" | "launcher" | "editor" | "admin";
  via: string;
  scope: string[] | null;
  abilities: Record<string, Ability>;
}

export interface ConnectorType {
  name: string;
  stream_type: string;
  summary: string;
  config_schema: Record<string, unknown>;
  stream_schema: Record<string, unknown>;
}

export interface ConnectionInfo {
  name: string;
  type: string;
  file: string;
  used_by: string[];
}

export interface ConnectionDocument {
  name: string;
  type: string;
  description: string | null;
  config: Record<string, unknown>;
  file: string;
  etag: string;
}

export interface CheckResult {
  ok: boolean;
  message: string;
}

export interface StreamInfo {
  name: string;
  columns: Record<string, string>;
  detail: string;
}

export interface TableInfo {
  pipeline: string;
  asset: string;
  table: string;
}

export interface QueryResult {
  columns: string[];
  rows: unknown[][];
  truncated: boolean;
  sql: string;
}

export interface LogLine {
  run_id: string;
  storage_id: number;
  timestamp: number;
  time: string;
  level: string;
  step_key: string | null;
  event_type: string | null;
  message: string;
  job_name: string | null;
  error: string | null;
}

export interface LogPage {
  lines: LogLine[];
  next_cursor: string | null;
}

export interface PipelineSummary {
  name: string;
  file: string;
  etag: string;
  version: number;
  in_scope: boolean;
}

export interface AlertEntry {
  id: number;
  at: string;
  status: string;
  kind: string;
  channel: string | null;
  pipeline: string | null;
  subject: string;
  run_id: string | null;
  title: string;
  detail: string | null;
}

export interface PipelineAlerts {
  pipeline: string;
  file: string;
  inherit: boolean;
  rules: Record<string, unknown>[];
  in_scope: boolean;
}

/** GET api/alerts/config: the global `alerts:` block as written, with what a write sends back. */
export interface AlertConfigDocument {
  file: string;
  exists: boolean;
  etag: string;
  version: number;
  alerts: Record<string, unknown>;
  own_file: boolean;
  comments: boolean;
  inline_secrets: string[];
  secret_names: string[];
  pipelines: PipelineAlerts[];
}

/** An accepted spec write: its version and whether the code location picked it up. */
export interface WriteResult {
  name: string;
  version: number;
  etag: string;
  file: string;
  reloaded: boolean;
  reload_problems: string[];
}

export interface ChannelTestResult {
  channel: string;
  delivered: boolean;
  attempts: number;
  error: string | null;
  title: string;
}

export interface AuditRecord {
  ts: number;
  event: string;
  username: string | null;
  role: string | null;
  source_ip: string | null;
  operation: string | null;
  targets?: Record<string, string[]>;
  decision: string;
  reason: string | null;
  run_id: string | null;
}

export type RoleName = "viewer" | "launcher" | "editor" | "admin";

export interface UserInfo {
  username: string;
  role: RoleName;
  scope: string[] | null;
  disabled: boolean;
  source: string;
  created_at: number | null;
}

export interface TokenInfo {
  id: string;
  username: string;
  role: RoleName;
  scope: string[] | null;
  description: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used: number | null;
}

/** How a saved query or a dashboard tile is drawn (`table`: the rows, no chart). */
export interface SavedChart {
  kind: "line" | "bar" | "table";
  x: string | null;
  ys: string[];
}

export interface SavedQuery {
  id: string;
  name: string;
  sql: string;
  row_limit: number;
  chart: SavedChart | null;
  created_at: number;
  updated_at: number;
}

export interface DashboardItem {
  query_id: string;
  chart: SavedChart | null;
}

export interface Dashboard {
  id: string;
  name: string;
  items: DashboardItem[];
  created_at: number;
  updated_at: number;
}
