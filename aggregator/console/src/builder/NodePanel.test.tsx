// The builder's side panel: a source's stream form comes from its connector type's stream schema (every
// type, as GET /api/connector-types serves it), edits report only changed fields, and read-only means disabled.
import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import type { ConnectorType } from "../api";
import connectorTypes from "../test/connector-types.json";
import { NodePanel } from "./NodePanel";
import type { SpecNode } from "./specGraph";

const TYPES = connectorTypes as unknown as ConnectorType[];

function source(type: ConnectorType, stream: Record<string, unknown> = { type: type.stream_type }): SpecNode {
  return { id: "source:s", kind: "source", label: "s", name: "s",
    value: { name: "s", connection: "c", stream, write_mode: "append", owners_note: "kept" } };
}

describe.each(TYPES.map((t) => [t.name, t] as const))("a %s source", (_name, type) => {
  it("gets a stream form generated from the connector type's stream schema", () => {
    const onChange = vi.fn();
    const { container } = render(<NodePanel node={source(type)} connections={{ c: type.name }} types={TYPES}
      readOnly={false} problems={[]} onChange={onChange} onRemove={() => undefined} />);
    expect(container.querySelector("form.rjsf")).not.toBeNull();
    const props = Object.keys((type.stream_schema.properties as Record<string, unknown>) ?? {});
    for (const key of props.filter((k) => k !== "type").slice(0, 3)) {
      expect(container.querySelector(`[id^="root_${key}"]`)).not.toBeNull();
    }
  });

  it("is disabled for a user who may not edit", () => {
    const { container } = render(<NodePanel node={source(type)} connections={{ c: type.name }} types={TYPES}
      readOnly problems={["specs/x.yaml:3: stream: bad"]} onChange={() => undefined} onRemove={() => undefined} />);
    for (const el of container.querySelectorAll("input, select, textarea")) expect((el as HTMLInputElement).disabled).toBe(true);
    expect(screen.queryByRole("button", { name: /^(Apply stream|Remove source)$/ })).toBeNull();
    expect(screen.getByRole("alert").textContent).toContain("stream: bad");
  });
});

describe("the sql source panel", () => {
  it("reports the stream the form applies, and a renamed field alone", () => {
    const sql = TYPES.find((t) => t.name === "sql")!;
    const onChange = vi.fn();
    render(<NodePanel node={source(sql, { type: "sql", table: "orders" })} connections={{ c: "sql" }} types={TYPES}
      readOnly={false} problems={[]} onChange={onChange} onRemove={() => undefined} />);
    fireEvent.click(screen.getByRole("button", { name: "Apply stream" }));
    expect(onChange).toHaveBeenCalledWith({ stream: expect.objectContaining({ type: "sql", table: "orders" }) });
    const name = screen.getByLabelText("Name");
    fireEvent.change(name, { target: { value: "orders_v2" } });
    fireEvent.blur(name);
    expect(onChange).toHaveBeenLastCalledWith({ name: "orders_v2" });
  });
});
