// "New pipeline": pick a template (GET /api/templates), fill in its parameters in a generated form, and
// instantiate it (POST /api/templates/{name}/instantiate); the new pipeline then opens in the builder.
import Form from "@rjsf/core";
import type { RJSFSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { stringify } from "yaml";

import { getJson } from "../api";
import { ErrorBox, Unavailable } from "../components/Unavailable";
import { ability, useMe } from "../me";
import { paramSchema, paramValues, pipelineName, type TemplateInfo } from "./templates";

export function NewPipeline() {
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const templates = useQuery({ queryKey: ["templates"], queryFn: () => getJson<TemplateInfo[]>("api/templates") });
  const [chosen, setChosen] = useState<string | null>(null);
  const [values, setValues] = useState<Record<string, unknown>>({});
  const template = templates.data?.find((t) => t.name === chosen);
  const schema = useMemo(() => (template ? (paramSchema(template) as RJSFSchema) : undefined), [template]);
  const may = ability(me.data, "instantiate_template");

  const create = useMutation({
    mutationFn: (t: TemplateInfo) => getJson<{ name: string; version: number }>(
      `api/templates/${encodeURIComponent(t.name)}/instantiate`, { method: "POST", body: { params: paramValues(t, values) } }),
    onSuccess: async (result) => {
      await queryClient.invalidateQueries({ queryKey: ["pipelines"] });
      navigate(`/builder/${encodeURIComponent(result.name)}`);
    },
  });

  const pick = (name: string) => {
    setChosen(name);
    setValues({});
    create.reset();
  };
  const target = template ? pipelineName(template, values) : null;

  return (
    <section>
      <Link to="/builder">← Pipelines</Link>
      <h1>New pipeline from a template</h1>
      <p>
        A template is a pipeline written once with <code>{"${parameter}"}</code> placeholders. Pick one, fill in its
        parameters, and the new pipeline is written as its own spec file (version 1), then opened in the builder.
      </p>
      <Unavailable what="Creating a pipeline from a template" ability={may} />
      {templates.isLoading ? <p role="status">Loading templates…</p> : null}
      <ErrorBox error={templates.error} title="Could not list templates" />
      {templates.data?.length === 0 ? (
        <div className="card" data-testid="no-templates">
          <h2>No templates yet</h2>
          <p>
            Declare one under <code>templates:</code> in any spec file of the specs directory (a name, its{" "}
            <code>params</code> and the <code>pipeline</code> with <code>{"${param}"}</code> placeholders; see the
            Console's builder docs). It is listed here as soon as the file is saved. Without a template, create a
            pipeline with <code>POST /api/pipelines</code> or a new spec file, then open it from the pipeline list.
          </p>
        </div>
      ) : null}
      {templates.data?.length ? (
        <div className="templates">
          <ul aria-label="Templates" className="card">
            {templates.data.map((t) => (
              <li key={t.name}>
                <button type="button" aria-pressed={t.name === chosen} onClick={() => pick(t.name)}>
                  Use template {t.name}
                </button>{" "}
                <small>{t.params.length ? `parameters: ${t.params.join(", ")}` : "no parameters"} · {t.file}</small>
              </li>
            ))}
          </ul>
          {template && schema ? (
            <div className="card" data-testid="template-form">
              <h2>Template {template.name}</h2>
              <Form
                key={template.name}
                className="rjsf"
                schema={schema}
                formData={values}
                validator={validator}
                noHtml5Validate
                showErrorList="top"
                disabled={!may.allowed || create.isPending}
                onChange={(e) => setValues((e.formData ?? {}) as Record<string, unknown>)}
                onSubmit={() => create.mutate(template)}
                uiSchema={{ "ui:submitButtonOptions": { submitText: create.isPending ? "Creating…" : "Create pipeline",
                  norender: !may.allowed } }}
              />
              <p role="status">{target ? <>Creates pipeline <code>{target}</code>.</> : "Fill in the parameters to see the new pipeline's name."}</p>
              <ErrorBox error={create.error} title="Could not create the pipeline" />
              <details>
                <summary>The template's pipeline</summary>
                <pre className="diff">{stringify(template.pipeline)}</pre>
              </details>
            </div>
          ) : (
            <p className="hint">Pick a template to see its parameters.</p>
          )}
        </div>
      ) : null}
    </section>
  );
}
