// The Administration page against a stubbed fetch answering as the proxy does: controls only for an admin
// (abilities from /_auth/me), one-time secrets shown once and then gone, refusals shown in place, and a
// revoke that needs a confirmation.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { Me, TokenInfo, UserInfo } from "../api";
import Administration from "./Administration";

const OPS = ["list_users", "create_user", "set_user_role", "set_user_disabled", "reset_password", "list_tokens",
  "create_token", "revoke_token", "read_audit"];

function me(role: Me["role"]): Me {
  const allowed = role === "admin";
  return { user: role === "admin" ? "root" : "vic", role, via: "session", scope: null,
    abilities: Object.fromEntries(OPS.map((op) => [op, { allowed,
      reason: allowed ? null : `needs role admin; vic has ${role}` }])) };
}

const USERS: UserInfo[] = [
  { username: "root", role: "admin", scope: null, disabled: false, source: "local", created_at: 1_700_000_000 },
  { username: "vic", role: "viewer", scope: ["sales"], disabled: false, source: "local", created_at: 1_700_000_100 },
];
const TOKEN: TokenInfo = { id: "abc123def456", username: "vic", role: "viewer", scope: ["sales"], description: "ci",
  created_at: 1_700_000_200, expires_at: null, revoked_at: null, last_used: null };

type Call = { method: string; path: string; body: unknown };

function stub(role: Me["role"], answers: Record<string, [number, unknown]> = {}): Call[] {
  const calls: Call[] = [];
  vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? "GET";
    const path = new URL(url, "http://x/").pathname.replace(/^\//, "");
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const key = `${method} ${path}`;
    const [status, body] = answers[key] ?? (
      key === "GET _auth/me" ? [200, me(role)] :
      key === "GET _auth/api/users" ? [200, USERS] :
      key === "GET _auth/api/tokens" ? [200, [TOKEN]] :
      key === "GET _auth/api/audit" ? [200, []] : [404, { detail: `no stub for ${key}` }]);
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  }));
  return calls;
}

function page() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(<QueryClientProvider client={client}><Administration /></QueryClientProvider>);
}

afterEach(() => vi.unstubAllGlobals());

describe("Administration", () => {
  it("shows a viewer no controls, only why", async () => {
    const calls = stub("viewer");
    page();
    expect(await screen.findByText(/Administration is not available to you: needs role admin; vic has viewer/))
      .toBeTruthy();
    expect(screen.queryByRole("tablist")).toBeNull();
    expect(screen.queryByRole("button")).toBeNull();
    expect(screen.queryByRole("textbox")).toBeNull();
    expect(calls.map((c) => c.path)).toEqual(["_auth/me"]); // nothing an admin-only route would refuse
  });

  it("creates a user with a generated password shown once, then gone", async () => {
    const calls = stub("admin", { "POST _auth/api/users": [201, { user: { ...USERS[1], username: "ana",
      role: "launcher", scope: ["sales", "shop"] }, password: "generated-secret-123" }] });
    page();
    expect(await screen.findByRole("tab", { name: "Users", selected: true })).toBeTruthy();
    await screen.findByRole("rowheader", { name: "vic" });
    const form = screen.getByRole("form", { name: "Add a user" });
    fireEvent.change(within(form).getByLabelText("Username"), { target: { value: "ana" } });
    fireEvent.change(within(form).getByLabelText("Role"), { target: { value: "launcher" } });
    fireEvent.change(within(form).getByLabelText(/Scope/), { target: { value: "shop, sales" } });
    fireEvent.click(within(form).getByRole("button", { name: "Add user" }));
    const secret = await screen.findByTestId("one-time-secret");
    expect((secret as HTMLInputElement).value).toBe("generated-secret-123");
    expect((secret as HTMLInputElement).readOnly).toBe(true);
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ username: "ana", role: "launcher",
      scope: ["sales", "shop"], generate_password: true });
    fireEvent.click(screen.getByRole("button", { name: "Done" }));
    expect(screen.queryByTestId("one-time-secret")).toBeNull();
    expect(document.body.textContent).not.toContain("generated-secret-123");
  });

  it("shows the API's refusal in place: the last admin cannot be disabled", async () => {
    stub("admin", { "PUT _auth/api/users/root/disabled": [409, { error: "conflict",
      detail: "root is the last enabled admin with an unscoped grant; make another user an unscoped admin first" }] });
    page();
    fireEvent.click(await screen.findByRole("button", { name: "Disable root" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("Could not change root (409)");
    expect(alert.textContent).toContain("last enabled admin");
  });

  it("edits a role and scope, and resets a password with a one-time secret", async () => {
    const calls = stub("admin", {
      "PUT _auth/api/users/vic/role": [200, { ...USERS[1], role: "editor", scope: null }],
      "POST _auth/api/users/vic/password": [200, { username: "vic", password: "fresh-password-456" }] });
    page();
    fireEvent.click(await screen.findByRole("button", { name: "Edit role and scope of vic" }));
    fireEvent.change(screen.getByLabelText("Role of vic"), { target: { value: "editor" } });
    fireEvent.change(screen.getByLabelText("Scope of vic"), { target: { value: "" } });
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(calls.find((c) => c.method === "PUT")?.body).toEqual({ role: "editor", scope: null }));
    fireEvent.click(screen.getByRole("button", { name: "Reset password of vic" }));
    expect(((await screen.findByTestId("one-time-secret")) as HTMLInputElement).value).toBe("fresh-password-456");
  });

  it("creates a token whose secret is shown once, and revokes only after a confirmation", async () => {
    const calls = stub("admin", {
      "POST _auth/api/tokens": [201, { token: { ...TOKEN, id: "fff000fff000" }, secret: "agg_fff000fff000_s3cr3t" }],
      "DELETE _auth/api/tokens/abc123def456": [200, { ...TOKEN, revoked_at: 1_700_000_300 }] });
    page();
    fireEvent.click(await screen.findByRole("tab", { name: "Tokens" }));
    const form = await screen.findByRole("form", { name: "Create a token" });
    await within(form).findByRole("option", { name: "vic (viewer)" });
    fireEvent.change(within(form).getByLabelText("Owner"), { target: { value: "vic" } });
    fireEvent.change(within(form).getByLabelText(/Expires/), { target: { value: "30" } });
    fireEvent.click(within(form).getByRole("button", { name: "Create token" }));
    expect(((await screen.findByTestId("one-time-secret")) as HTMLInputElement).value).toBe("agg_fff000fff000_s3cr3t");
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ username: "vic", role: null, scope: null,
      expires_in_days: 30, description: "" });
    fireEvent.click(screen.getByRole("button", { name: "Revoke token abc123def456" }));
    expect(calls.some((c) => c.method === "DELETE")).toBe(false);
    fireEvent.click(screen.getByRole("button", { name: "Yes, revoke" }));
    await waitFor(() => expect(calls.some((c) => c.method === "DELETE" && c.path.endsWith("abc123def456"))).toBe(true));
    // Leaving the tab drops the secret for good.
    fireEvent.click(screen.getByRole("tab", { name: "Audit" }));
    fireEvent.click(screen.getByRole("tab", { name: "Tokens" }));
    expect(screen.queryByTestId("one-time-secret")).toBeNull();
  });
});
