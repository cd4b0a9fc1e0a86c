import { describe, expect, it } from "vitest";

import { chartData, chooseChart, columnKinds } from "./chart";

describe("chart selection", () => {
  it("plots numbers over a time column as a line", () => {
    const columns = ["day", "region", "revenue", "orders"];
    const rows = [["2026-01-02", "north", 10.5, 3], ["2026-01-01", "south", "7", 2]];
    expect(chooseChart(columns, rows)).toEqual({ kind: "line", x: "day", ys: ["revenue", "orders"] });
    // sorted by time, numbers as numbers
    const data = chartData(columns, rows, chooseChart(columns, rows)!);
    expect(data.map((d) => d.day)).toEqual(["2026-01-01", "2026-01-02"]);
    expect(data[0].revenue).toBe(7);
  });

  it("timestamps count as time", () => {
    expect(chooseChart(["at", "n"], [["2026-01-01T10:00:00Z", 1], ["2026-01-01 11:00:00", 2]])?.kind).toBe("line");
  });

  it("plots numbers per category as bars", () => {
    expect(chooseChart(["region", "revenue"], [["north", 1], ["south", 2]])).toEqual({
      kind: "bar", x: "region", ys: ["revenue"] });
  });

  it("two numeric columns: the first is the x axis", () => {
    expect(chooseChart(["x", "y"], [[1, 2], [2, 4]])).toEqual({ kind: "line", x: "x", ys: ["y"] });
  });

  it("offers no chart without a number to plot, or without rows", () => {
    expect(chooseChart(["name", "city"], [["a", "b"]])).toBeNull();
    expect(chooseChart(["n"], [[1], [2]])).toBeNull();
    expect(chooseChart(["day", "n"], [])).toBeNull();
  });

  it("ignores nulls when deciding a column's kind, and an all-null column entirely", () => {
    expect(columnKinds(["a", "b", "c"], [[null, "x", 1], ["2026-01-01", null, null], [null, null, 2]])).toEqual({
      time: ["a"], numeric: ["c"], text: ["b"] });
  });

  it("caps the series at five", () => {
    const cols = ["k", "a", "b", "c", "d", "e", "f"];
    expect(chooseChart(cols, [["x", 1, 2, 3, 4, 5, 6]])?.ys).toHaveLength(5);
  });
});
