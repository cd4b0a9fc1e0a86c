// The version history: the line diff's rows, and the panel's list, diff, confirmation and If-Match rollback.
import { fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { fakeApi, renderWithQuery } from "../test/server";
import { changeCount, foldUnchanged, lineDiff, type VersionInfo } from "./history";
import { VersionHistory } from "./VersionHistory";

afterEach(() => vi.unstubAllGlobals());

describe("lineDiff", () => {
  it("numbers lines on both sides and marks what changed", () => {
    const rows = lineDiff("a\nb\nc\n", "a\nB\nc\nd\n");
    expect(rows.map((r) => [r.kind, r.text, r.oldLine, r.newLine])).toEqual([
      ["same", "a", 1, 1], ["removed", "b", 2, null], ["added", "B", null, 2], ["same", "c", 3, 3],
      ["added", "d", null, 4],
    ]);
    expect(changeCount(rows)).toEqual({ added: 2, removed: 1 });
  });

  it("has no phantom empty line for a file without a final newline", () => {
    expect(lineDiff("x", "x").map((r) => r.text)).toEqual(["x"]);
  });

  it("folds long unchanged runs but keeps three lines of context around a change", () => {
    const old = Array.from({ length: 20 }, (_, i) => `line ${i}`).join("\n") + "\n";
    const next = old.replace("line 10\n", "line ten\n");
    const folded = foldUnchanged(lineDiff(old, next));
    expect(folded[0]).toEqual({ kind: "fold", hidden: 7 });
    expect(folded.filter((r) => r.kind === "fold")).toEqual([{ kind: "fold", hidden: 7 }, { kind: "fold", hidden: 6 }]);
    expect(folded.filter((r) => r.kind === "same")).toHaveLength(6);
  });
});

const V1 = "pipelines:\n  - name: p\n    sources: []\n";
const V2 = "pipelines:\n  - name: p\n    description: two\n    sources: []\n";
const HISTORY: VersionInfo[] = [
  { version: 2, action: "update", username: "eddie", ts: 1_765_000_000, file: "p.yaml", diff: "", yaml: V2 },
  { version: 1, action: "create", username: "admin", ts: 1_764_000_000, file: "p.yaml", diff: "", yaml: V1 },
];

describe("the history panel", () => {
  it("lists who wrote each version and when, and diffs a chosen one against the current file", async () => {
    fakeApi({ "GET api/pipelines/p/versions": () => ({ body: HISTORY }) });
    renderWithQuery(<VersionHistory name="p" current={V2} etag='"e2"' rollback={{ allowed: true, reason: null }}
      dirty={false} onRolledBack={async () => undefined} />);
    await screen.findByText("eddie");
    expect(screen.getByText("admin")).toBeTruthy();
    expect(screen.getByText(/2025-12-06 \d\d:\d\d:\d\d UTC/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Compare version 2" }));
    expect(screen.getByRole("status").textContent).toContain("identical to the current file");
    fireEvent.click(screen.getByRole("button", { name: "Compare version 1" }));
    const diff = screen.getByTestId("version-diff");
    expect(diff.querySelector(".diff-added")!.textContent).toBe("+     description: two\n");
    expect(diff.querySelectorAll(".diff-removed")).toHaveLength(0);
  });

  it("rolls back only after a confirmation, with If-Match, then reloads", async () => {
    const calls = fakeApi({
      "GET api/pipelines/p/versions": () => ({ body: HISTORY }),
      "POST api/pipelines/p/versions/1/rollback": () => ({ body: { name: "p", version: 3, etag: '"e3"' } }),
    });
    const reloaded = vi.fn(async () => undefined);
    renderWithQuery(<VersionHistory name="p" current={V2} etag='"e2"' rollback={{ allowed: true, reason: null }}
      dirty onRolledBack={reloaded} />);
    fireEvent.click(await screen.findByRole("button", { name: "Compare version 1" }));
    fireEvent.click(screen.getByRole("button", { name: "Roll back to version 1…" }));
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
    expect(screen.getByRole("group", { name: "Confirm the rollback" }).textContent).toContain("unsaved edits");
    fireEvent.click(screen.getByRole("button", { name: "Confirm rollback to version 1" }));
    await waitFor(() => expect(reloaded).toHaveBeenCalledTimes(1));
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.headers["if-match"]).toBe('"e2"');
    expect((await screen.findByTestId("rollback-result")).textContent).toContain("now version 3");
  });

  it("shows a stale ETag as a conflict and does not reload", async () => {
    fakeApi({
      "GET api/pipelines/p/versions": () => ({ body: HISTORY }),
      "POST api/pipelines/p/versions/1/rollback": () => ({ status: 412, body: { detail: "stale" } }),
    });
    const reloaded = vi.fn(async () => undefined);
    renderWithQuery(<VersionHistory name="p" current={V2} etag='"old"' rollback={{ allowed: true, reason: null }}
      dirty={false} onRolledBack={reloaded} />);
    fireEvent.click(await screen.findByRole("button", { name: "Compare version 1" }));
    fireEvent.click(screen.getByRole("button", { name: "Roll back to version 1…" }));
    fireEvent.click(screen.getByRole("button", { name: "Confirm rollback to version 1" }));
    expect((await screen.findByRole("alert")).textContent).toContain("Conflict (412)");
    expect(reloaded).not.toHaveBeenCalled();
  });

  it("is disabled with the server's reason for a user who may not roll back", async () => {
    fakeApi({ "GET api/pipelines/p/versions": () => ({ body: HISTORY }) });
    renderWithQuery(<VersionHistory name="p" current={V2} etag='"e2"' dirty={false} onRolledBack={async () => undefined}
      rollback={{ allowed: false, reason: "needs role editor; vic has viewer" }} />);
    expect(screen.getByRole("note").textContent).toBe("Rolling back is not available to you: needs role editor; vic has viewer.");
    fireEvent.click(await screen.findByRole("button", { name: "Compare version 1" }));
    expect((screen.getByRole("button", { name: "Roll back to version 1…" }) as HTMLButtonElement).disabled).toBe(true);
  });
});
