// Row previews at a node: the request each kind sends, progress while the worker reads, rows in a table, and
// errors in place (a 503 is "no worker", not a generic failure).
import { fireEvent, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { fakeApi, renderWithQuery } from "../test/server";
import { PreviewRows } from "./PreviewRows";

afterEach(() => vi.unstubAllGlobals());

const ALLOWED = { allowed: true, reason: null };

describe("previewing a node's rows", () => {
  it("shows progress, then the source's rows with their types", async () => {
    let answer: (v: { body: unknown }) => void = () => undefined;
    const calls = fakeApi({ "POST api/pipelines/sales/sources/orders/preview":
      () => new Promise((resolve) => { answer = resolve; }) });
    renderWithQuery(<PreviewRows pipeline="sales" kind="source" name="orders" ability={ALLOWED} unsaved={false} />);
    fireEvent.click(screen.getByRole("button", { name: "Preview rows" }));
    expect((await screen.findByRole("status")).textContent).toContain("Reading rows in the worker");
    expect(calls[0].body).toEqual({ limit: 20 });
    answer({ body: { columns: { order_id: "integer", region: "string" }, rows: [[1, "north"], [2, null]], truncated: true } });
    const table = await screen.findByTestId("preview-result");
    expect([...table.querySelectorAll("th")].map((th) => th.textContent)).toEqual(["order_id integer", "region string"]);
    expect([...table.querySelectorAll("tbody tr")].map((tr) => tr.textContent)).toEqual(["1north", "2∅"]);
    expect(table.textContent).toContain("2 row(s), and there are more");
  });

  it("asks a transform preview for upstream rows too", async () => {
    const calls = fakeApi({ "POST api/pipelines/sales/transforms/daily_sales/preview":
      () => ({ body: { columns: {}, rows: [], truncated: false } }) });
    renderWithQuery(<PreviewRows pipeline="sales" kind="transform" name="daily_sales" ability={ALLOWED} unsaved />);
    expect(screen.getByText(/save to preview your edits/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Preview rows" }));
    expect((await screen.findByTestId("preview-result")).textContent).toContain("No rows");
    expect(calls[0].body).toEqual({ source_rows: 100, limit: 20 });
  });

  it("says that no worker is running on a 503", async () => {
    fakeApi({ "POST api/pipelines/sales/sources/orders/preview": () => ({ status: 503,
      body: { detail: "no worker is configured (AGGREGATOR_WORKER_URL and AGGREGATOR_WORKER_TOKEN)" } }) });
    renderWithQuery(<PreviewRows pipeline="sales" kind="source" name="orders" ability={ALLOWED} unsaved={false} />);
    fireEvent.click(screen.getByRole("button", { name: "Preview rows" }));
    const error = await screen.findByTestId("preview-error");
    expect(error.textContent).toMatch(/^No worker \(503\): no worker is configured/);
    expect(error.textContent).toContain("aggregator dev starts one");
  });

  it("shows any other refusal with its status in place", async () => {
    fakeApi({ "POST api/pipelines/sales/transforms/t/preview": () => ({ status: 409,
      body: { detail: "near \"::\": syntax error" } }) });
    renderWithQuery(<PreviewRows pipeline="sales" kind="transform" name="t" ability={ALLOWED} unsaved={false} />);
    fireEvent.click(screen.getByRole("button", { name: "Preview rows" }));
    expect((await screen.findByTestId("preview-error")).textContent).toContain("Preview failed (409): near \"::\": syntax error");
  });

  it("offers no button, only the reason, when previewing is not allowed", () => {
    renderWithQuery(<PreviewRows pipeline="sales" kind="source" name="orders" unsaved={false}
      ability={{ allowed: false, reason: "your grant does not include pipeline sales" }} />);
    expect(screen.queryByRole("button")).toBeNull();
    expect(screen.getByRole("note").textContent).toContain("your grant does not include pipeline sales");
  });
});
