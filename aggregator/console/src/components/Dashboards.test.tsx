// Dashboards against a stubbed proxy: tiles run their saved query and draw the tile's choice (a table here,
// charts need a layout jsdom has not), a query can be added to and removed from the dashboard with a PUT of the
// whole list, and a tile whose query is gone says so.
import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { Dashboard, QueryResult, SavedQuery } from "../api";
import { fakeApi, renderWithQuery } from "../test/server";
import { Dashboards, drawnAs } from "./Dashboards";

const QUERY: SavedQuery = { id: "0123456789abcdef", name: "by region", sql: "SELECT region, n FROM t", row_limit: 10,
  chart: { kind: "table", x: null, ys: [] }, created_at: 1, updated_at: 1 };
const RESULT: QueryResult = { columns: ["region", "n"], rows: [["north", 3], ["south", 5]], truncated: false,
  sql: QUERY.sql };

afterEach(() => vi.unstubAllGlobals());

describe("Dashboards", () => {
  it("runs each tile's query and adds and removes tiles with one PUT each", async () => {
    let board: Dashboard = { id: "fedcba9876543210", name: "sales", items: [
      { query_id: QUERY.id, chart: null }, { query_id: "ffffffffffffffff", chart: null }], created_at: 1, updated_at: 1 };
    const calls = fakeApi({
      "GET api/dashboards": () => ({ body: [board] }),
      "POST api/query": () => ({ body: RESULT }),
      [`PUT api/dashboards/${board.id}`]: (call) => {
        board = { ...board, ...(call.body as Partial<Dashboard>) };
        return { body: board };
      },
    });
    renderWithQuery(<Dashboards saved={[QUERY]} current={{ query_id: QUERY.id, chart: { kind: "bar", x: "region",
      ys: ["n"] } }} />);
    const tiles = await screen.findAllByTestId("dashboard-tile");
    expect(tiles).toHaveLength(2);
    expect(await within(tiles[0]).findByText("south")).toBeTruthy();
    expect(within(tiles[1]).getByText("This saved query no longer exists.")).toBeTruthy();
    expect(calls.find((c) => c.path === "api/query")?.body).toEqual({ sql: QUERY.sql, row_limit: 10, format: "json" });

    fireEvent.click(screen.getByRole("button", { name: "Add query to dashboard" }));
    await waitFor(() => expect(screen.getAllByTestId("dashboard-tile")).toHaveLength(3));
    const put = calls.filter((c) => c.method === "PUT")[0];
    expect((put.body as Dashboard).items[2]).toEqual({ query_id: QUERY.id, chart: { kind: "bar", x: "region", ys: ["n"] } });

    fireEvent.click(screen.getByRole("button", { name: "Remove ffffffffffffffff from the dashboard" }));
    await waitFor(() => expect(screen.getAllByTestId("dashboard-tile")).toHaveLength(2));
    expect(board.items.map((i) => i.query_id)).toEqual([QUERY.id, QUERY.id]);
  });

  it("creates a dashboard by name and shows a refusal in place", async () => {
    fakeApi({
      "GET api/dashboards": () => ({ body: [] }),
      "POST api/dashboards": () => ({ status: 409, body: { detail: "you already have one named 'x'; pick another name" } }),
    });
    renderWithQuery(<Dashboards saved={[]} current={null} />);
    expect(await screen.findByText("No dashboard yet.")).toBeTruthy();
    fireEvent.change(screen.getByLabelText("New dashboard name"), { target: { value: "x" } });
    fireEvent.click(screen.getByRole("button", { name: "Create dashboard" }));
    expect(await screen.findByText(/already have one named 'x'/)).toBeTruthy();
  });
});

describe("drawnAs", () => {
  it("keeps a saved chart whose columns exist, else chooses again, and `table` draws none", () => {
    expect(drawnAs({ kind: "line", x: "region", ys: ["n"] }, RESULT)).toEqual({ kind: "line", x: "region", ys: ["n"] });
    expect(drawnAs({ kind: "line", x: "gone", ys: ["n"] }, RESULT)?.kind).toBe("bar");
    expect(drawnAs({ kind: "table", x: null, ys: [] }, RESULT)).toBeNull();
  });
});
