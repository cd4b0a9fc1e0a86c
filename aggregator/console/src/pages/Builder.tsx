import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router-dom";

import { getJson, type PipelineSummary } from "../api";
import { PipelineBuilder } from "../builder/PipelineBuilder";
import { ErrorBox } from "../components/Unavailable";

export default function Builder() {
  const { name } = useParams();
  if (name) return <PipelineBuilder name={name} />;
  return <PipelineList />;
}

function PipelineList() {
  const pipelines = useQuery({ queryKey: ["pipelines"], queryFn: () => getJson<PipelineSummary[]>("api/pipelines") });
  return (
    <section>
      <h1>Pipeline builder</h1>
      <p>Pick a pipeline to see it as a graph of sources, tables, transforms and checks, and to edit it.</p>
      <ErrorBox error={pipelines.error} title="Could not list pipelines" />
      {pipelines.data?.length === 0 ? (
        <p>No pipelines yet: add a spec file to the specs directory or create one through the API.</p>
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
