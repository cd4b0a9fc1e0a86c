import { ApiError, getJson, request } from "./api";

export const CHUNK_BYTES = 4 * 1024 * 1024; // under the proxy's 16 MiB body limit; progress every few MB

export interface UploadState {
  received: number;
  total: number;
  complete: boolean;
}

/** Upload one file in chunks with Content-Range, resuming from what the server already holds. */
export async function uploadFile(pipeline: string, file: File, onProgress: (s: UploadState) => void,
  signal?: AbortSignal): Promise<UploadState> {
  const path = `api/uploads/${encodeURIComponent(pipeline)}/${encodeURIComponent(file.name)}`;
  let received = 0;
  try {
    const status = await getJson<{ received: number; total: number | null; complete: boolean }>(path, { signal });
    if (status.complete) throw new ApiError(409, `${file.name} was already delivered to ${pipeline}; rename the file to upload it again`);
    if (status.total === file.size) received = status.received;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  onProgress({ received, total: file.size, complete: false });
  if (file.size === 0) throw new ApiError(400, `${file.name} is empty`);
  while (received < file.size) {
    const end = Math.min(received + CHUNK_BYTES, file.size);
    const response = await request(path, {
      method: "PUT",
      raw: file.slice(received, end),
      headers: { "content-type": "application/octet-stream", "content-range": `bytes ${received}-${end - 1}/${file.size}` },
      signal,
    });
    const state = (await response.json()) as { received: number; complete: boolean };
    received = state.received;
    onProgress({ received, total: file.size, complete: state.complete });
    if (state.complete) return { received, total: file.size, complete: true };
  }
  return { received, total: file.size, complete: true };
}
