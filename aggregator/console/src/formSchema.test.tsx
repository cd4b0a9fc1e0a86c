// Form generation from every connector type's schema, as GET /api/connector-types serves it
// (src/test/connector-types.json, kept current by aggregator_tests/console/test_console_build.py).
import { fireEvent, render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";

import { ConnectionForm } from "./components/ConnectionForm";
import { formSchema, isEnvRefBranch, secretFields, type Schema } from "./formSchema";
import connectorTypes from "./test/connector-types.json";

const TYPES = connectorTypes as { name: string; config_schema: Schema }[];

function props(s: Schema): Record<string, Schema> {
  return (s.properties as Record<string, Schema>) ?? {};
}

function labelFor(container: HTMLElement, key: string): HTMLElement | null {
  return container.querySelector(`label[for="root_${key}"]`);
}

describe.each(TYPES.map((t) => [t.name, t.config_schema] as const))("the %s connection form", (_name, schema) => {
  const rendered = formSchema(schema);

  it("offers no literal secret and no 'string or reference' choice anywhere", () => {
    const text = JSON.stringify(rendered);
    expect(text).not.toContain('"format":"password"');
    const walk = (s: unknown): void => {
      if (!s || typeof s !== "object") return;
      const o = s as Schema;
      if (Array.isArray(o.anyOf)) expect((o.anyOf as Schema[]).some(isEnvRefBranch)).toBe(false);
      Object.values(o).forEach(walk);
    };
    walk(rendered);
    for (const path of secretFields(schema)) {
      const [owner, key] = path.includes(".") ? path.split(".") : [null, path];
      const field = owner ? props((rendered.$defs as Record<string, Schema>)[owner])[key] : props(rendered)[key];
      expect(field.type, path).toBe("object");
      expect(Object.keys(props(field)), path).toEqual(["env"]);
    }
  });

  it("renders every option with its title, description, required mark, default and choices", () => {
    const { container } = render(<ConnectionForm schema={schema} value={{}} onSubmit={() => {}} />);
    const required = new Set((schema.required as string[]) ?? []);
    for (const [key, prop] of Object.entries(props(rendered))) {
      if (prop.type === "object" || prop.type === "array" || prop.oneOf || prop.anyOf) {
        // An object or list (auth, headers, servers, a secret reference) is a fieldset of its own.
        expect(container.querySelector(`#root_${key}`) ?? container.querySelector(`[id^="root_${key}"]`), key)
          .not.toBeNull();
        continue;
      }
      // A checkbox's label wraps it; other inputs have a label[for].
      const label = prop.type === "boolean" ? container.querySelector(`#root_${key}`)?.closest("label") ?? null
        : labelFor(container, key);
      expect(label, key).not.toBeNull();
      expect(label!.textContent).toContain(String(prop.title ?? key));
      expect(label!.textContent!.includes("*"), `${key} required mark`).toBe(required.has(key));
      if (prop.description) {
        expect(container.textContent).toContain(String(prop.description));
      }
      const input = container.querySelector(`#root_${key}`) as HTMLInputElement | HTMLSelectElement;
      expect(input, key).not.toBeNull();
      if (Array.isArray(prop.enum)) {
        expect(input.tagName, key).toBe("SELECT");
        const options = [...(input as HTMLSelectElement).options].map((o) => o.textContent);
        for (const choice of prop.enum as string[]) expect(options).toContain(choice);
      }
      if (prop.default !== undefined && typeof prop.default !== "object" && prop.type !== "boolean") {
        expect(input.value, `${key} default`).toBe(String(prop.default));
      }
      if (prop.type === "boolean") {
        expect((input as HTMLInputElement).checked, `${key} default`).toBe(Boolean(prop.default));
      }
    }
  });
});

describe("secrets", () => {
  const rest = TYPES.find((t) => t.name === "rest")!.config_schema;

  it("are entered as the name of an environment variable and sent as {env: NAME}", () => {
    const onSubmit = vi.fn();
    const { container } = render(
      <ConnectionForm schema={rest} value={{ base_url: "http://127.0.0.1:1/api", auth: { type: "bearer",
        token: { env: "SHOP_TOKEN" } } }} onSubmit={onSubmit} />,
    );
    expect(container.querySelector('input[type="password"]')).toBeNull();
    const env = screen.getByDisplayValue("SHOP_TOKEN");
    expect(within(env.closest("fieldset")!).getByText(/Environment variable/)).toBeTruthy();
    expect(container.textContent).toContain("name the environment variable that holds it");
    fireEvent.change(env, { target: { value: "API_TOKEN" } });
    fireEvent.submit(container.querySelector("form")!);
    expect(onSubmit).toHaveBeenCalledTimes(1);
    const config = onSubmit.mock.calls[0][0];
    expect(config.auth).toEqual({ type: "bearer", token: { env: "API_TOKEN" } });
    expect(config.base_url).toBe("http://127.0.0.1:1/api");
  });

  it("refuses a variable name that is not one", () => {
    const onSubmit = vi.fn();
    const { container } = render(
      <ConnectionForm schema={rest} value={{ base_url: "http://x", auth: { type: "bearer", token: { env: "not a name" } } }}
        onSubmit={onSubmit} />,
    );
    fireEvent.submit(container.querySelector("form")!);
    expect(onSubmit).not.toHaveBeenCalled();
    expect(container.textContent).toMatch(/pattern/);
  });

  it("keeps an environment reference a connection already has in a plain option", () => {
    const s = formSchema(rest, { base_url: { env: "SHOP_URL" } });
    expect(Object.keys(props(props(s).base_url))).toEqual(["env"]);
    expect(props(formSchema(rest, {})).base_url.type).toBe("string");
  });

  it("required options are refused when empty", () => {
    const onSubmit = vi.fn();
    const { container } = render(<ConnectionForm schema={rest} value={{}} onSubmit={onSubmit} />);
    fireEvent.submit(container.querySelector("form")!);
    expect(onSubmit).not.toHaveBeenCalled();
    expect(container.textContent).toMatch(/required/i);
  });
});
