import { useQuery } from "@tanstack/react-query";
import { type DragEvent, useState } from "react";

import { getJson, type PipelineSummary } from "../api";
import { Unavailable } from "../components/Unavailable";
import { ability, useMe } from "../me";
import { uploadFile, type UploadState } from "../upload";

interface Item {
  file: File;
  state: UploadState;
  error?: string;
}

export default function Uploads() {
  const me = useMe();
  const pipelines = useQuery({ queryKey: ["pipelines"], queryFn: () => getJson<PipelineSummary[]>("api/pipelines") });
  const [pipeline, setPipeline] = useState("");
  const [items, setItems] = useState<Item[]>([]);
  const [over, setOver] = useState(false);
  const may = ability(me.data, "upload_chunk");

  const update = (name: string, patch: Partial<Item>) =>
    setItems((all) => all.map((i) => (i.file.name === name ? { ...i, ...patch } : i)));

  const start = async (files: File[]) => {
    if (!pipeline) return;
    setItems((all) => [...all.filter((i) => !files.some((f) => f.name === i.file.name)),
      ...files.map((file) => ({ file, state: { received: 0, total: file.size, complete: false } }))]);
    for (const file of files) {
      try {
        await uploadFile(pipeline, file, (state) => update(file.name, { state }));
      } catch (err) {
        update(file.name, { error: (err as Error).message });
      }
    }
  };
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    void start([...e.dataTransfer.files]);
  };
  return (
    <section>
      <h1>Uploads</h1>
      <p className="note">
        Files go to the directory a pipeline's file sensor watches; the sensor starts a run for each new file. Uploads
        are sent in 4 MiB chunks and resume where they stopped when you drop the same file again.
      </p>
      <Unavailable what="Uploading" ability={may} />
      <label>
        Pipeline
        <br />
        <select value={pipeline} onChange={(e) => setPipeline(e.target.value)} disabled={!may.allowed}>
          <option value="">(choose a pipeline with a file sensor)</option>
          {pipelines.data?.filter((p) => p.in_scope).map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
        </select>
      </label>
      <div className={`dropzone${over ? " over" : ""}`} onDragOver={(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave={() => setOver(false)} onDrop={drop} aria-disabled={!pipeline || !may.allowed}>
        <p>{pipeline ? `Drop files here for ${pipeline}, or` : "Choose a pipeline first, then drop files here or"}</p>
        <label>
          choose files
          <input type="file" multiple disabled={!pipeline || !may.allowed}
            onChange={(e) => void start([...(e.target.files ?? [])])} />
        </label>
      </div>
      {items.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">File</th>
              <th scope="col">Progress</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {items.map((i) => (
              <tr key={i.file.name}>
                <td>{i.file.name}</td>
                <td>
                  <progress max={i.state.total || 1} value={i.state.received} aria-label={`${i.file.name} progress`} />{" "}
                  {Math.round((100 * i.state.received) / (i.state.total || 1))}%
                </td>
                <td role="status">
                  {i.error ? <span className="error">{i.error}</span> : i.state.complete ? "Delivered: the sensor starts a run" : "Uploading…"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
