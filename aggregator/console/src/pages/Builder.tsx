import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router-dom";

import { getJson, type PipelineSummary } from "../api";
import { PipelineBuilder } from "../builder/PipelineBuilder";
import { NewPipeline } from "../builder/NewPipeline";
import { ErrorBox, Unavailable } from "../components/Unavailable";
import { ability, useMe } from "../me";

/** `/builder`: the pipelines; `/builder/new-pipeline`: one from a template; `/builder/<name>`: the builder. */
export default function Builder({ create = false }: { create?: boolean }) {
  const { name } = useParams();
  if (create) return <NewPipeline />;
  if (name) return <PipelineBuilder name={name} />;
  return <PipelineList />;
}

function PipelineList() {
  const me = useMe();
  const fromTemplate = ability(me.data, "instantiate_template");
  const pipelines = useQuery({ queryKey: ["pipelines"], queryFn: () => getJson<PipelineSummary[]>("api/pipelines") });
  return (
    <section>
      <h1>Pipeline builder</h1>
      <p>Pick a pipeline to see it as a graph of sources, tables, transforms and checks, and to edit it.</p>
      {fromTemplate.allowed ? (
        <p><Link to="/builder/new-pipeline">New pipeline from a template</Link></p>
      ) : (
        <Unavailable what="Creating a pipeline from a template" ability={fromTemplate} />
      )}
      <ErrorBox error={pipelines.error} title="Could not list pipelines" />
      {pipelines.data?.length === 0 ? (
        <p>No pipelines yet: start one from a template, add a spec file to the specs directory, or create one through the API.</p>
      ) : null}
      <ul>
        {pipelines.data?.map((p) => (
          <li key={p.name}>
            <Link to={`/builder/${encodeURIComponent(p.name)}`}>{p.name}</Link> <small>{p.file}</small>
          </li>
        ))}
      </ul>
    </section>
  );
}
