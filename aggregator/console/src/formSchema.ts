// Turns a connector type's config JSON Schema (GET /api/connector-types) into the schema the form renders.
//
// The API's schema is the spec's: every option may also be an environment reference `{env: NAME}` (an anyOf
// branch), and secret options (marked `x-secret`, `writeOnly`) must be one. A form offering "string or
// object" for every field would be unusable, so: a secret becomes only the reference (an environment variable
// name; a literal secret can never be typed in), any other option only its value — unless the connection
// being edited already holds a reference there, which is then kept as it is.

export type Schema = Record<string, unknown>;

export const ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$";

export function isEnvRefBranch(s: unknown): boolean {
  if (!s || typeof s !== "object") return false;
  const o = s as Schema;
  const props = o.properties as Schema | undefined;
  return o.type === "object" && !!props && Object.keys(props).length === 1 && "env" in props;
}

export function isEnvRef(value: unknown): value is { env: string } {
  return !!value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 &&
    typeof (value as Schema).env === "string";
}

export function isSecret(s: Schema): boolean {
  return s["x-secret"] === true || s.writeOnly === true;
}

function envRefSchema(title: unknown, description: unknown, secret: boolean): Schema {
  const how = secret
    ? "A secret: name the environment variable that holds it; the value is read when a run starts and never stored."
    : "Read from this environment variable when a run starts.";
  return {
    type: "object",
    title,
    description: [description, how].filter(Boolean).join(" "),
    properties: {
      env: { type: "string", title: "Environment variable", pattern: ENV_NAME, minLength: 1 },
    },
    required: ["env"],
    additionalProperties: false,
    ...(secret ? { "x-secret": true } : {}),
  };
}

const KEEP = ["title", "description", "default", "examples"];

function carry(from: Schema, to: Schema): Schema {
  const out: Schema = { ...to };
  for (const key of KEEP) if (key in from && !(key in out)) out[key] = from[key];
  if (out.default === null) delete out.default;
  return out;
}

// `$ref`s are resolved here rather than by the form library: the REST stream's `parent` is itself a RestStream
// (`parent: RestStream | None`), and a form that follows that reference renders a parent inside a parent
// without end. Each reference is inlined once per path; a reference back into a definition that is already
// being expanded (a cycle), one nested deeper than MAX_REF_DEPTH, or one past the MAX_REF_EXPANSIONS budget
// (a DAG of references can grow exponentially when inlined) becomes a free-form object: the form keeps what
// the value holds there and says to edit it in the YAML view.
export const MAX_REF_DEPTH = 8;
export const MAX_REF_EXPANSIONS = 2000;

interface Resolution {
  defs: Record<string, Schema>;
  stack: string[];
  budget: { left: number };
}

const DEF_REF = /^#\/(?:\$defs|definitions)\/(.+)$/;

function nestedLeaf(from: Schema, why: string): Schema {
  const description = [from.description, `${why}: edit it in the YAML view.`].filter(Boolean).join(" ");
  return { type: "object", ...(from.title ? { title: from.title } : {}), description, additionalProperties: true,
    "x-nested-in-yaml": true };
}

function resolveRef(s: Schema, value: unknown, r: Resolution): Schema {
  const ref = s.$ref as string;
  const { $ref: _drop, ...siblings } = s;
  void _drop;
  const found = DEF_REF.exec(ref);
  const name = found ? decodeURIComponent(found[1].replace(/~1/g, "/").replace(/~0/g, "~")) : null;
  if (name === null || !(name in r.defs)) return nestedLeaf(siblings, `Its schema (${ref}) is not in this document`);
  if (r.stack.includes(name)) return nestedLeaf(siblings, `A ${name} inside a ${name} is not shown in the form`);
  if (r.stack.length >= MAX_REF_DEPTH) return nestedLeaf(siblings, "Nested deeper than the form shows");
  if (r.budget.left <= 0) return nestedLeaf(siblings, "This schema is too large to show whole");
  r.budget.left -= 1;
  // The referencing schema's own title, description and default win over the definition's.
  const merged: Schema = { ...r.defs[name], ...siblings };
  return walk(merged, value, { ...r, stack: [...r.stack, name] });
}

/** The form's schema for one (sub)schema, given the value it will hold (for references already there). */
export function formSchema(schema: Schema, value?: unknown): Schema {
  const defs = (schema.$defs ?? schema.definitions ?? {}) as Record<string, Schema>;
  const r: Resolution = { defs, stack: [], budget: { left: MAX_REF_EXPANSIONS } };
  const out = walk(schema, value, r);
  // The definitions stay, rewritten the same way, for readers that look a definition up by name (the
  // discriminator's mapping, secretFields); the form itself no longer refers to them.
  if (Object.keys(defs).length) {
    out.$defs = Object.fromEntries(Object.entries(defs).map(([k, v]) =>
      [k, walk(v, undefined, { defs, stack: [k], budget: { left: MAX_REF_EXPANSIONS } })]));
    delete out.definitions;
  }
  return out;
}

function walk(schema: Schema, value: unknown, r: Resolution): Schema {
  if (typeof schema.$ref === "string") return resolveRef(schema, value, r);
  let s: Schema = { ...schema };
  delete s.$defs;
  const anyOf = s.anyOf as Schema[] | undefined;
  if (Array.isArray(anyOf) && anyOf.some(isEnvRefBranch)) {
    const { anyOf: _drop, ...rest } = s;
    void _drop;
    if (isSecret(s) || isEnvRef(value)) return envRefSchema(s.title, s.description, isSecret(s));
    const plain = anyOf.filter((b) => !isEnvRefBranch(b));
    s = plain.length === 1 ? carry(rest, plain[0]) : { ...rest, anyOf: plain };
  }
  // Optional values (`X | None`): the form leaves them out when empty, so the null branch only gets in the way.
  const options = s.anyOf as Schema[] | undefined;
  if (Array.isArray(options)) {
    const nonNull = options.filter((b) => b.type !== "null");
    if (nonNull.length === 1 && options.length === 2) {
      const { anyOf: _drop, ...rest } = s;
      void _drop;
      // The optional field's own title and description label it, not the definition's (a `$ref`'s siblings win).
      const own = Object.fromEntries(["title", "description"].filter((k) => k in rest).map((k) => [k, rest[k]]));
      s = carry(rest, walk({ ...nonNull[0], ...own }, value, r));
    } else {
      s.anyOf = options.map((b) => walk(b, undefined, r));
    }
  }
  if (s.default === null) delete s.default;
  // A discriminator's fixed value (`type: api_key` inside one auth choice) is shown, not edited.
  if ("const" in s) s = { ...s, default: s.const, readOnly: true };
  if (Array.isArray(s.oneOf)) s.oneOf = (s.oneOf as Schema[]).map((b) => walk(b, undefined, r));
  const props = s.properties as Record<string, Schema> | undefined;
  if (props) {
    const current = value && typeof value === "object" ? (value as Schema) : {};
    s.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, walk(v, current[k], r)]));
  }
  if (s.additionalProperties && typeof s.additionalProperties === "object") {
    s.additionalProperties = walk(s.additionalProperties as Schema, undefined, r);
  }
  if (s.items && typeof s.items === "object") s.items = walk(s.items as Schema, undefined, r);
  return s;
}

/** Names of the secret options at the top level and in `$defs` (for the page's note and the tests). */
export function secretFields(schema: Schema): string[] {
  const found: string[] = [];
  const walk = (s: Schema, path: string) => {
    const props = s.properties as Record<string, Schema> | undefined;
    for (const [k, v] of Object.entries(props ?? {})) {
      if (isSecret(v)) found.push(path + k);
      else walk(v, `${path}${k}.`);
    }
  };
  walk(schema, "");
  for (const [name, def] of Object.entries((schema.$defs as Record<string, Schema>) ?? {})) walk(def, `${name}.`);
  return found;
}

/** Drops empty strings the form leaves behind, so an untouched optional field is not written as "". */
export function pruneEmpty(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruneEmpty);
  if (value && typeof value === "object") {
    const out: Schema = {};
    for (const [k, v] of Object.entries(value as Schema)) {
      const pruned = pruneEmpty(v);
      if (pruned === "" || pruned === undefined) continue;
      out[k] = pruned;
    }
    return out;
  }
  return value;
}
