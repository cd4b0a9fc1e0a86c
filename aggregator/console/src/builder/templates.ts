// Templates (GET /api/templates) as forms: a template declares only its parameters' names, so the form's
// schema is derived from where each `${param}` appears in the template's pipeline. A parameter that only ever
// fills whole values (`min: "${min_orders}"`) is read as a YAML scalar, the way `with:` in a spec file is (100
// is a number, true a boolean); one that also appears inside a text (`name: "sales_${region}"`) is sent as the
// text typed, so "007" stays "007" in the name and everywhere else.
import { parse } from "yaml";

export interface TemplateInfo {
  name: string;
  params: string[];
  file: string;
  pipeline: Record<string, unknown>;
}

export interface ParamUse {
  param: string;
  /** Where in the pipeline, e.g. `sources.0.stream.path`. */
  path: string;
  /** The placeholder is the whole value (its type is kept). */
  whole: boolean;
}

const PARAM = /\$\{([a-z_][a-z0-9_]*)\}/g; // the loader's PARAM_RE (aggregator/pipelines/spec.py)
const WHOLE = /^\$\{([a-z_][a-z0-9_]*)\}$/;

export function paramUses(pipeline: unknown): ParamUse[] {
  const uses: ParamUse[] = [];
  const walk = (value: unknown, path: string) => {
    if (typeof value === "string") {
      const whole = WHOLE.exec(value);
      for (const m of value.matchAll(PARAM)) uses.push({ param: m[1], path: path || "(top)", whole: !!whole });
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, path ? `${path}.${i}` : String(i)));
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        walk(k, path); // a key may hold a placeholder too (the loader substitutes keys)
        walk(v, path ? `${path}.${k}` : k);
      }
    }
  };
  walk(pipeline, "");
  return uses;
}

export type JsonSchema = Record<string, unknown>;

/** The JSON Schema of a template's parameter form: every parameter required, described by where it goes. */
export function paramSchema(template: TemplateInfo): JsonSchema {
  const uses = paramUses(template.pipeline);
  const properties: Record<string, JsonSchema> = {};
  for (const param of template.params) {
    const mine = uses.filter((u) => u.param === param);
    const where = [...new Set(mine.map((u) => u.path))];
    const typed = mine.length > 0 && mine.every((u) => u.whole);
    properties[param] = {
      type: "string",
      title: param,
      minLength: 1,
      description: [
        where.length ? `Used in ${where.join(", ")}.` : "Declared but not used in the pipeline.",
        typed ? "Read as a YAML value: 100 is a number, true a boolean, anything else text." : "",
      ].filter(Boolean).join(" "),
    };
  }
  return { type: "object", required: [...template.params], properties };
}

/** The form's text values as the API's parameters (typed where a placeholder fills a whole value). */
export function paramValues(template: TemplateInfo, form: Record<string, unknown>): Record<string, string | number | boolean> {
  const uses = paramUses(template.pipeline);
  const typed = new Set(template.params.filter((p) => {
    const mine = uses.filter((u) => u.param === p);
    return mine.length > 0 && mine.every((u) => u.whole);
  }));
  const out: Record<string, string | number | boolean> = {};
  for (const param of template.params) {
    const text = String(form[param] ?? "");
    if (typed.has(param)) {
      let value: unknown = text;
      try {
        value = parse(text);
      } catch {
        // not a YAML scalar (e.g. "a: b: c"): sent as the text it is
      }
      out[param] = typeof value === "number" || typeof value === "boolean" ? value : text;
    } else {
      out[param] = text;
    }
  }
  return out;
}

/** The name the new pipeline will get with these values, or null while a parameter in it is missing. */
export function pipelineName(template: TemplateInfo, form: Record<string, unknown>): string | null {
  const name = template.pipeline.name;
  if (typeof name !== "string") return null;
  let missing = false;
  const out = name.replace(PARAM, (_m, p: string) => {
    const v = form[p];
    if (v === undefined || v === "") missing = true;
    return String(v ?? "");
  });
  return missing ? null : out;
}
