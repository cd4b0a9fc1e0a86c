// Component tests' stand-in for the proxy: a fetch that answers from a route table and records each request,
// and a fresh TanStack Query client per render (no cache shared between tests).
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { vi } from "vitest";

export interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

export type Handler = (call: Call) => { status?: number; body: unknown } | Promise<{ status?: number; body: unknown }>;

/** Installs a fetch answering `"METHOD /path"` keys (the path below the proxy root, no query string). */
export function fakeApi(routes: Record<string, Handler>): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit = {}) => {
    const path = new URL(url, "http://console.test/").pathname.replace(/^\//, "");
    const call: Call = { method: init.method ?? "GET", path, headers: (init.headers ?? {}) as Record<string, string>,
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined };
    calls.push(call);
    const handler = routes[`${call.method} ${path}`];
    const answer = handler ? await handler(call) : { status: 404, body: { detail: `no route ${call.method} ${path}` } };
    return new Response(JSON.stringify(answer.body), { status: answer.status ?? 200,
      headers: { "content-type": "application/json" } });
  });
  return calls;
}

export function renderWithQuery(ui: ReactElement) {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(<QueryClientProvider client={client}>{ui}</QueryClientProvider>);
}
