// Exports of what is on screen: a table as CSV or JSON Lines.

export interface Column<R> {
  key: string;
  label: string;
  /** The raw value written to the file (numbers stay numbers). */
  value: (row: R) => string | number | boolean | null | undefined;
}

/** One CSV cell: quoted when needed; a text cell a spreadsheet would run as a formula gets a `'`. */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  let s = v;
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  if (/[",\r\n]/.test(s) || s !== s.trim()) s = `"${s.replace(/"/g, '""')}"`;
  return s;
}

export function toCsv<R>(columns: Column<R>[], rows: R[]): string {
  const lines = [columns.map((c) => csvCell(c.label)).join(',')];
  for (const r of rows) lines.push(columns.map((c) => csvCell(c.value(r))).join(','));
  return lines.join('\r\n') + '\r\n';
}

export function toJsonl<R>(columns: Column<R>[], rows: R[]): string {
  return rows
    .map((r) => {
      const o: Record<string, unknown> = {};
      for (const c of columns) {
        const v = c.value(r);
        o[c.key] = v === undefined ? null : v;
      }
      return JSON.stringify(o);
    })
    .map((l) => l + '\n')
    .join('');
}

/** A file name safe on every system: llmtrack-breakdown-model-last_7d.csv */
export function fileName(parts: string[], ext: string): string {
  const base = parts
    .filter(Boolean)
    .join('-')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .slice(0, 120);
  return `${base}.${ext}`;
}

/** Starts a download of text in the browser. */
export function download(name: string, text: string | Blob, type: string): void {
  const blob = typeof text === 'string' ? new Blob([text], { type }) : text;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
