// formSchema resolves `$ref`s itself, cycle-safe and within a budget: generated over every connector type's
// config and stream schema as GET /api/connector-types serves them (src/test/connector-types.json, kept
// current by scripts/console_fixtures.py), plus the reference shapes that used to hang the form.
import Form from "@rjsf/core";
import type { RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { fireEvent, render } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { formSchema, MAX_REF_DEPTH, type Schema } from "./formSchema";
import connectorTypes from "./test/connector-types.json";

const TYPES = connectorTypes as { name: string; stream_type: string; config_schema: Schema; stream_schema: Schema }[];
const CASES = TYPES.flatMap((t) => [[`${t.name} config`, t.config_schema] as const,
  [`${t.name} stream`, t.stream_schema] as const]);

/** Every `$ref` left in the form's part of a schema (not in `$defs`, which the form does not render). */
function refsIn(s: unknown, out: string[] = []): string[] {
  if (Array.isArray(s)) s.forEach((x) => refsIn(x, out));
  else if (s && typeof s === "object") {
    for (const [k, v] of Object.entries(s)) {
      if (k === "$ref") out.push(String(v));
      else if (k !== "$defs" && k !== "discriminator") refsIn(v, out);
    }
  }
  return out;
}

describe.each(CASES)("the %s schema", (_label, schema) => {
  const started = performance.now();
  const rendered = formSchema(schema);
  const took = performance.now() - started;

  it("is rewritten promptly, into a form schema with fields and no reference left to follow", () => {
    expect(took).toBeLessThan(1000);
    expect(refsIn(rendered)).toEqual([]);
    expect(Object.keys((rendered.properties as Record<string, unknown>) ?? {}).length).toBeGreaterThan(0);
  });

  it("renders as a form with a control for every top-level field", () => {
    const { container } = render(<Form schema={rendered as RJSFSchema} validator={validator} noHtml5Validate />);
    for (const key of Object.keys(rendered.properties as Record<string, unknown>)) {
      expect(container.querySelector(`[id^="root_${key}"]`), key).not.toBeNull();
    }
  });
});

describe("the REST stream", () => {
  const rest = TYPES.find((t) => t.name === "rest")!.stream_schema;

  it("shows its recursive parent once, as a free-form object to edit in YAML", () => {
    const parent = (formSchema(rest).properties as Record<string, Schema>).parent;
    expect(parent["x-nested-in-yaml"]).toBe(true);
    expect(parent.description).toMatch(/^Read this stream once per record of the parent stream.*A RestStream inside a RestStream is not shown in the form: edit it in the YAML view\.$/);
  });

  it("submits what was typed, not a parent or an incremental cursor nobody asked for", () => {
    const onSubmit = vi.fn();
    const { container } = render(<Form schema={formSchema(rest) as RJSFSchema} validator={validator} noHtml5Validate
      formData={{ type: "rest", path: "items" }} onSubmit={(e) => onSubmit(e.formData)} />);
    fireEvent.submit(container.querySelector("form")!);
    expect(onSubmit).toHaveBeenCalledTimes(1);
    const data = onSubmit.mock.calls[0][0];
    expect(data).toMatchObject({ type: "rest", path: "items" });
    expect(data.parent ?? null).toBeNull();
    expect(data.incremental ?? null).toBeNull();
  });
});

describe("reference shapes", () => {
  const leaves = (s: unknown): Schema[] => {
    const found: Schema[] = [];
    const walk = (x: unknown) => {
      if (Array.isArray(x)) x.forEach(walk);
      else if (x && typeof x === "object") {
        if ((x as Schema)["x-nested-in-yaml"]) found.push(x as Schema);
        for (const [k, v] of Object.entries(x)) if (k !== "$defs") walk(v);
      }
    };
    walk(s);
    return found;
  };

  it("stops a definition that refers to itself", () => {
    const s = formSchema({ $ref: "#/$defs/Node", $defs: { Node: { type: "object", properties: {
      name: { type: "string" }, child: { $ref: "#/$defs/Node" } } } } });
    expect(Object.keys(s.properties as object)).toEqual(["name", "child"]);
    expect(leaves(s)).toHaveLength(1);
  });

  it("stops a cycle through two definitions, and through the old `definitions` key", () => {
    const s = formSchema({ $ref: "#/definitions/A", definitions: {
      A: { type: "object", properties: { b: { $ref: "#/definitions/B" } } },
      B: { type: "object", properties: { a: { $ref: "#/definitions/A" } } } } });
    const b = (s.properties as Record<string, Schema>).b;
    expect((b.properties as Record<string, Schema>).a["x-nested-in-yaml"]).toBe(true);
  });

  it("bounds a reference chain that doubles at every level (2^40 paths) by depth and budget", () => {
    const defs: Record<string, Schema> = {};
    for (let i = 0; i < 40; i++) {
      defs[`D${i}`] = { type: "object", properties: { left: { $ref: `#/$defs/D${i + 1}` }, right: { $ref: `#/$defs/D${i + 1}` } } };
    }
    defs.D40 = { type: "string" };
    const started = performance.now();
    const s = formSchema({ $ref: "#/$defs/D0", $defs: defs });
    expect(performance.now() - started).toBeLessThan(2000);
    let depth = 0;
    for (let x: Schema | undefined = s; x?.properties; x = (x.properties as Record<string, Schema>).left) depth++;
    expect(depth).toBe(MAX_REF_DEPTH);
    expect(leaves(s).length).toBeGreaterThan(0);
  });

  it("names a reference it cannot resolve instead of failing", () => {
    const s = formSchema({ type: "object", properties: { x: { $ref: "https://example.com/other.json" } } });
    expect((s.properties as Record<string, Schema>).x.description).toContain("is not in this document");
  });
});
