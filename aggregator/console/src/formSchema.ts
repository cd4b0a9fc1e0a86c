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

/** The form's schema for one (sub)schema, given the value it will hold (for references already there). */
export function formSchema(schema: Schema, value?: unknown): Schema {
  let s: Schema = { ...schema };
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
      s = carry(rest, formSchema(nonNull[0], value));
    } else {
      s.anyOf = options.map((b) => formSchema(b));
    }
  }
  if (s.default === null) delete s.default;
  // A discriminator's fixed value (`type: api_key` inside one auth choice) is shown, not edited.
  if ("const" in s) s = { ...s, default: s.const, readOnly: true };
  if (Array.isArray(s.oneOf)) s.oneOf = (s.oneOf as Schema[]).map((b) => formSchema(b));
  const props = s.properties as Record<string, Schema> | undefined;
  if (props) {
    const current = value && typeof value === "object" ? (value as Schema) : {};
    s.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, formSchema(v, current[k])]));
  }
  if (s.additionalProperties && typeof s.additionalProperties === "object") {
    s.additionalProperties = formSchema(s.additionalProperties as Schema);
  }
  if (s.items && typeof s.items === "object") s.items = formSchema(s.items as Schema);
  const defs = s.$defs as Record<string, Schema> | undefined;
  if (defs) s.$defs = Object.fromEntries(Object.entries(defs).map(([k, v]) => [k, formSchema(v)]));
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
