import Form from "@rjsf/core";
import type { RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useMemo } from "react";

import { formSchema, pruneEmpty, type Schema } from "../formSchema";

export interface ConnectionFormProps {
  schema: Schema;
  value: Record<string, unknown>;
  disabled?: boolean;
  onChange?: (value: Record<string, unknown>) => void;
  onSubmit: (value: Record<string, unknown>) => void;
  submitLabel?: string;
}

function uiFor(schema: Schema): UiSchema {
  // Environment variable names: plain text inputs, with the note that they name, not hold, the secret.
  const ui: UiSchema = {};
  for (const [key, prop] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) {
    if (prop["x-secret"]) ui[key] = { env: { "ui:placeholder": "e.g. API_TOKEN", "ui:autocomplete": "off" } };
  }
  return ui;
}

/** The `config:` form of one connector type, generated from its JSON Schema. */
export function ConnectionForm({ schema, value, disabled, onChange, onSubmit, submitLabel }: ConnectionFormProps) {
  // Keyed on the connector type's schema only: re-deriving on every keystroke would reset nested choices.
  const rendered = useMemo(() => formSchema(schema, value) as RJSFSchema, [schema]); // eslint-disable-line
  return (
    <Form
      className="rjsf"
      schema={rendered}
      uiSchema={{ ...uiFor(rendered), "ui:submitButtonOptions": { submitText: submitLabel ?? "Save", props: {
        className: "primary" } } }}
      formData={value}
      validator={validator}
      disabled={disabled}
      showErrorList="top"
      noHtml5Validate
      onChange={(e) => onChange?.(pruneEmpty(e.formData) as Record<string, unknown>)}
      onSubmit={(e) => onSubmit(pruneEmpty(e.formData) as Record<string, unknown>)}
    />
  );
}
