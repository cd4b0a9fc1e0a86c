// The Schema mapping page: mapping edits become the source's `columns:` and `schema_policy` in the spec text
// (the rest of the file kept), saved with If-Match; server problems are shown on their column; a stale save is
// a conflict; a viewer sees it read-only with the reason.
import { fireEvent, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";

import { applyMapping, columnEdits, policyOf } from "../builder/columnMapping";
import { parseSpec, specData, specToYaml } from "../builder/specGraph";
import { type Call, fakeApi, renderWithQuery } from "../test/server";
import SchemaMapping from "./SchemaMapping";

const SPEC = `# CRM pipeline
pipelines:
  - name: crm
    sources:
      - name: people
        connection: db  # the CRM's database
        stream: {type: sql, table: people}
        columns:
          updated_at: {type: timestamp}
          FullName: {rename: name}
`;

const SCHEMA = {
  source: { ID: "integer", name: "text", ssn: "text", updated_at: "timestamp" },
  source_error: null,
  source_columns: { ID: "integer", FullName: "text", ssn: "text", updated_at: "timestamp" },
  mapping: { ID: "ID", FullName: "name", ssn: "ssn", updated_at: "updated_at" },
  destination: { ID: "integer", name: "text" },
  last_materialization: null,
};

const source = (yaml: string) => (specData(parseSpec(yaml)) as {
  pipelines: { sources: Record<string, unknown>[] }[] }).pipelines[0].sources[0];

describe("applyMapping", () => {
  it("writes renames, types, exclusions and the policy, keeping the rest of the file", () => {
    const doc = parseSpec(SPEC);
    const edits = columnEdits(source(SPEC), ["ID", "FullName", "ssn", "updated_at"]);
    expect(edits.map(([c]) => c)).toEqual(["ID", "FullName", "ssn", "updated_at"]);
    const set = (name: string, change: object) => {
      const row = edits.find(([c]) => c === name)!;
      Object.assign(row[1], change);
    };
    set("ID", { rename: "person_id" });
    set("ssn", { exclude: true, type: "text" }); // an exclusion says only that
    set("FullName", { rename: "" }); // back to the source's name: the entry goes
    applyMapping(doc, "crm", "people", edits, { changes: "discard", missing_columns: "keep" });
    const yaml = specToYaml(doc);
    expect(source(yaml).columns).toEqual({ updated_at: { type: "timestamp" }, ID: { rename: "person_id" },
      ssn: { exclude: true } });
    expect(source(yaml).schema_policy).toBe("discard");
    expect(yaml).toContain("          ID: {rename: person_id}\n          ssn: {exclude: true}\n");
    expect(yaml).toContain("# CRM pipeline");
    expect(yaml).toContain("# the CRM's database");
    expect(source(yaml).stream).toEqual({ type: "sql", table: "people" });
  });

  it("removes `columns:` when nothing is mapped and writes the long policy form when it must", () => {
    const doc = parseSpec(SPEC);
    const edits = columnEdits(source(SPEC), []).map(([c]) => [c, { rename: "", type: "", exclude: false }] as [string, never]);
    applyMapping(doc, "crm", "people", edits, { changes: "evolve", missing_columns: "accept" });
    const after = source(specToYaml(doc));
    expect("columns" in after).toBe(false);
    expect(after.schema_policy).toEqual({ changes: "evolve", missing_columns: "accept" });
    expect(policyOf(after)).toEqual({ changes: "evolve", missing_columns: "accept" });
  });
});

function renderPage(role: "editor" | "viewer", put: (call: Call) => { status?: number; body: unknown }) {
  const allowed = role === "editor";
  const calls = fakeApi({
    "GET _auth/me": () => ({ body: { user: role, role, via: "session", scope: null, abilities: {
      update_pipeline: { allowed, reason: allowed ? null : `needs role editor; ${role} has viewer` } } } }),
    "GET api/pipelines/crm": () => ({ body: { name: "crm", file: "crm.yaml", etag: '"e1"', version: 1, in_scope: true,
      yaml: SPEC } }),
    "GET api/pipelines/crm/sources/people/schema": () => ({ body: SCHEMA }),
    "PUT api/pipelines/crm": put,
  });
  renderWithQuery(
    <MemoryRouter initialEntries={["/pipelines/crm/sources/people/mapping"]}>
      <Routes><Route path="/pipelines/:name/sources/:source/mapping" element={<SchemaMapping />} /></Routes>
    </MemoryRouter>,
  );
  return calls;
}

describe("the Schema mapping page", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows discovered columns beside the table's and saves the mapping with If-Match", async () => {
    const calls = renderPage("editor", () => ({ body: { name: "crm", etag: '"e2"', version: 2 } }));
    const rename = await screen.findByLabelText("Table column for ID");
    expect(screen.getByTestId("mapping-table").textContent).toContain("name (text)");
    fireEvent.change(rename, { target: { value: "person_id" } });
    fireEvent.click(screen.getByLabelText("Exclude ssn"));
    fireEvent.change(screen.getByRole("combobox", { name: "New columns and type changes" }), { target: { value: "freeze" } });
    fireEvent.click(screen.getByRole("button", { name: "Save mapping" }));
    expect((await screen.findByTestId("save-result")).textContent).toContain("version 2");
    const put = calls.find((c) => c.method === "PUT")!;
    expect(put.headers["if-match"]).toBe('"e1"');
    const saved = source((put.body as { yaml: string }).yaml);
    expect(saved.columns).toEqual({ updated_at: { type: "timestamp" }, FullName: { rename: "name" },
      ID: { rename: "person_id" }, ssn: { exclude: true } });
    expect(saved.schema_policy).toBe("freeze");
  });

  it("shows a server problem on its column, and a stale save as a conflict", async () => {
    let answer: { status: number; body: unknown } = { status: 422, body: {
      detail: "1 problem(s) in the spec; nothing was stored",
      problems: [{ file: "crm.yaml", line: 9, field: "pipelines[0].sources[0].columns.ID.rename",
        message: "'ID' is renamed to 'name', which is also ..." }] } };
    renderPage("editor", () => answer);
    fireEvent.change(await screen.findByLabelText("Table column for ID"), { target: { value: "name" } });
    fireEvent.click(screen.getByRole("button", { name: "Save mapping" }));
    const inPlace = await screen.findByRole("alert", { name: "Problems with ID" });
    expect(inPlace.textContent).toContain("is renamed to 'name'");
    answer = { status: 412, body: { detail: "pipeline 'crm' changed since you read it" } };
    fireEvent.click(screen.getByRole("button", { name: "Save mapping" }));
    expect((await screen.findByTestId("save-conflict")).textContent).toContain("412");
  });

  it("is read-only with the reason for a viewer", async () => {
    renderPage("viewer", () => ({ status: 403, body: { detail: "no" } }));
    const rename = await screen.findByLabelText("Table column for ID");
    await waitFor(() => expect(screen.getByRole("note").textContent).toContain("needs role editor; viewer has viewer"));
    expect((rename as HTMLInputElement).disabled).toBe(true);
    expect((screen.getByLabelText("Exclude ssn") as HTMLInputElement).disabled).toBe(true);
    expect(screen.queryByRole("button", { name: "Save mapping" })).toBeNull();
  });
});
