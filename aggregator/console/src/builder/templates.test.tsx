// Templates as forms: the parameter schema derived from where placeholders appear, typed values, and the
// "new pipeline" page (empty state, generated form, instantiate, then the builder opens).
import { fireEvent, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { Me } from "../api";
import { fakeApi, renderWithQuery } from "../test/server";
import { NewPipeline } from "./NewPipeline";
import { paramSchema, paramUses, paramValues, pipelineName, type TemplateInfo } from "./templates";

afterEach(() => vi.unstubAllGlobals());

// The template of docs/pipelines.md ("Templates").
const REGIONAL: TemplateInfo = {
  name: "regional_sales", params: ["region", "min_orders"], file: "templates.yaml",
  pipeline: {
    name: "sales_${region}", tags: { region: "${region}" },
    sources: [{ name: "orders", connection: "api", stream: { type: "rest", path: "regions/${region}/orders" },
      checks: [{ type: "row_count", min: "${min_orders}" }] }],
  },
};

describe("the parameter form's schema", () => {
  it("says where each parameter goes and requires every one", () => {
    expect(paramUses(REGIONAL.pipeline).filter((u) => u.param === "region").map((u) => u.path))
      .toEqual(["name", "tags.region", "sources.0.stream.path"]);
    const schema = paramSchema(REGIONAL) as { required: string[]; properties: Record<string, { description: string }> };
    expect(schema.required).toEqual(["region", "min_orders"]);
    expect(schema.properties.region.description).toBe("Used in name, tags.region, sources.0.stream.path.");
    expect(schema.properties.min_orders.description).toMatch(/^Used in sources.0.checks.0.min. Read as a YAML value/);
  });

  it("types a whole-value parameter as YAML would and keeps text parameters as text", () => {
    expect(paramValues(REGIONAL, { region: "007", min_orders: "100" })).toEqual({ region: "007", min_orders: 100 });
    expect(paramValues(REGIONAL, { region: "eu", min_orders: "many" })).toEqual({ region: "eu", min_orders: "many" });
    expect(pipelineName(REGIONAL, { region: "eu" })).toBe("sales_eu");
    expect(pipelineName(REGIONAL, {})).toBeNull();
  });
});

const EDITOR = { user: "eddie", role: "editor", via: "session", scope: null,
  abilities: { instantiate_template: { allowed: true, reason: null } } } as Me;

function page() {
  return renderWithQuery(
    <MemoryRouter initialEntries={["/builder/new-pipeline"]}>
      <Routes>
        <Route path="/builder/new-pipeline" element={<NewPipeline />} />
        <Route path="/builder/:name" element={<p>builder opened</p>} />
      </Routes>
    </MemoryRouter>,
  );
}

describe("the new pipeline page", () => {
  it("says what to do when there is no template", async () => {
    fakeApi({ "GET _auth/me": () => ({ body: EDITOR }), "GET api/templates": () => ({ body: [] }) });
    page();
    expect((await screen.findByTestId("no-templates")).textContent).toContain("Declare one under templates:");
  });

  it("instantiates the chosen template with typed parameters and opens the new pipeline", async () => {
    const calls = fakeApi({
      "GET _auth/me": () => ({ body: EDITOR }),
      "GET api/templates": () => ({ body: [REGIONAL] }),
      "POST api/templates/regional_sales/instantiate": () => ({ status: 201, body: { name: "sales_eu", version: 1 } }),
    });
    page();
    fireEvent.click(await screen.findByRole("button", { name: "Use template regional_sales" }));
    fireEvent.change(screen.getByLabelText(/^region/), { target: { value: "eu" } });
    fireEvent.change(screen.getByLabelText(/^min_orders/), { target: { value: "100" } });
    expect(screen.getByText("sales_eu").closest("p")!.textContent).toBe("Creates pipeline sales_eu.");
    fireEvent.click(screen.getByRole("button", { name: "Create pipeline" }));
    await screen.findByText("builder opened");
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({ params: { region: "eu", min_orders: 100 } });
  });

  it("refuses a missing parameter in the form and shows the API's refusal in place", async () => {
    const calls = fakeApi({
      "GET _auth/me": () => ({ body: EDITOR }),
      "GET api/templates": () => ({ body: [REGIONAL] }),
      "POST api/templates/regional_sales/instantiate": () => ({ status: 409, body: { detail: "pipeline 'sales_eu' already exists" } }),
    });
    page();
    fireEvent.click(await screen.findByRole("button", { name: "Use template regional_sales" }));
    fireEvent.change(screen.getByLabelText(/^region/), { target: { value: "eu" } });
    fireEvent.click(screen.getByRole("button", { name: "Create pipeline" }));
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
    fireEvent.change(screen.getByLabelText(/^min_orders/), { target: { value: "1" } });
    fireEvent.click(screen.getByRole("button", { name: "Create pipeline" }));
    await waitFor(() => expect(screen.getByText(/already exists/)).toBeTruthy());
    expect(screen.getByText(/already exists/).closest("[role=alert]")!.textContent).toContain("(409)");
  });

  it("shows a viewer why creating is not available and offers no button", async () => {
    fakeApi({
      "GET _auth/me": () => ({ body: { ...EDITOR, user: "vic", role: "viewer",
        abilities: { instantiate_template: { allowed: false, reason: "needs role editor; vic has viewer" } } } }),
      "GET api/templates": () => ({ body: [REGIONAL] }),
    });
    page();
    fireEvent.click(await screen.findByRole("button", { name: "Use template regional_sales" }));
    await screen.findByText(/needs role editor; vic has viewer/);
    expect(screen.queryByRole("button", { name: "Create pipeline" })).toBeNull();
  });
});
