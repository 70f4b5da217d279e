// Server-side exports (POST /v1/exports): the whole range, not only what is on screen. A small
// export is answered inline (200, the file); a large one is a job (202) polled until its file is ready.

import { get, request, withQuery } from './api';
import { download } from './csv';

export type ExportKind = 'events' | 'breakdown' | 'focus';
export type ExportFormat = 'csv' | 'jsonl';

/** What the FOCUS export is, for its button's tooltip. */
export const FOCUS_DESCRIPTION = 'FinOps FOCUS 1.2 cost rows for finance tools';

/** The body of POST /v1/exports: kind, format, and the page's query (workspace, range, filters). */
export function exportBody(kind: ExportKind, format: ExportFormat, params: URLSearchParams, extra: Record<string, string | undefined> = {}): Record<string, string> {
  const body: Record<string, string> = { kind, format };
  for (const [k, v] of params) body[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== '') body[k] = v;
  return body;
}

interface ExportJob {
  state: string;
  url?: string;
  download_url?: string;
  error?: string;
}

/** Runs an export to a downloaded file; `onQueued` is told when the server makes it a job. */
export async function runExport(ws: string, body: Record<string, string>, name: string, onQueued?: () => void): Promise<void> {
  const res = await request<Response>('POST', '/v1/exports', body, { raw: true });
  if (res.status === 202) {
    const job = (await res.json()) as { id: string };
    onQueued?.();
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const j = await get<ExportJob>(withQuery(`/v1/exports/${encodeURIComponent(job.id)}`, { workspace: ws }));
      if (j.state === 'done') {
        const url = j.url ?? j.download_url;
        if (url) {
          const a = document.createElement('a');
          a.href = url;
          a.download = name;
          a.click();
        }
        return;
      }
      if (j.state === 'failed') throw new Error(j.error ?? 'the export failed');
    }
    throw new Error('the export is taking too long; try a shorter range');
  }
  download(name, await res.blob(), body.format === 'jsonl' ? 'application/x-ndjson' : 'text/csv');
}
