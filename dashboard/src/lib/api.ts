// The API client: same-origin fetch with the session cookie (never a token in storage). The browser
// sends `Origin` on every POST, PATCH and DELETE, which the server requires for session writes.

export class ApiError extends Error {
  status: number;
  code: string;
  /** The field a 400 names, when the message names one (`invalid_rule` and friends). */
  field?: string;
  retryAfter?: number;
  body?: unknown;
  constructor(status: number, code: string, message: string, body?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.field = fieldOf(message, body);
  }
}

/** Extracts the field a validation message is about: "`budget_usd` must be ..." -> budget_usd. */
export function fieldOf(message: string, body?: unknown): string | undefined {
  const b = body as { error?: { field?: string } } | undefined;
  if (b?.error?.field) return b.error.field;
  const m = /`([a-z_][a-z0-9_.]*)`/i.exec(message);
  return m ? m[1] : undefined;
}

type Listener = (e: ApiError) => void;
let onUnauthorized: Listener | null = null;
/** Called on any 401 from a signed-in call, to send the visitor to sign-in. */
export function setUnauthorizedHandler(fn: Listener | null): void {
  onUnauthorized = fn;
}

export interface RequestOptions {
  /** Do not report a 401 to the global handler (sign-in probes). */
  quiet401?: boolean;
  signal?: AbortSignal;
  /** The raw Response is returned (downloads). */
  raw?: boolean;
}

export type Fetch = typeof fetch;
let fetchImpl: Fetch = (...args) => fetch(...args);
/** For tests. */
export function setFetch(f: Fetch): void {
  fetchImpl = f;
}

/** How long a read waits, at most, when the server asks it to slow down (429 with Retry-After). */
export const MAX_RETRY_WAIT_S = 5;

export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}, retried = false): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin', signal: opts.signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetchImpl(path, init);
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached. Check your connection and try again.');
  }
  if (res.ok) {
    if (opts.raw) return res as unknown as T;
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      return text as unknown as T;
    }
  }
  let parsed: unknown = undefined;
  let code = 'http_' + res.status;
  let message = res.statusText || `Request failed (${res.status})`;
  try {
    const text = await res.text();
    parsed = text ? JSON.parse(text) : undefined;
    const err = (parsed as { error?: { code?: string; message?: string } })?.error;
    if (err?.code) code = err.code;
    if (err?.message) message = err.message;
  } catch {
    /* not JSON */
  }
  const e = new ApiError(res.status, code, message, parsed);
  const ra = res.headers.get('Retry-After');
  if (ra) e.retryAfter = Number(ra);
  // A read refused by the rate limit is tried once more after the wait the server asks for.
  if (res.status === 429 && method === 'GET' && !retried && e.retryAfter !== undefined && e.retryAfter <= MAX_RETRY_WAIT_S) {
    await new Promise((r) => setTimeout(r, Math.max(0, e.retryAfter!) * 1000 + 50));
    if (!opts.signal?.aborted) return request<T>(method, path, body, opts, true);
  }
  if (res.status === 401 && !opts.quiet401 && onUnauthorized) onUnauthorized(e);
  throw e;
}

// Reads started before the page that needs them has loaded (see prefetch), used once.
const prefetched = new Map<string, { p: Promise<unknown>; at: number }>();
const PREFETCH_FRESH_MS = 15_000;

/** Starts a read now so that the page asking for the same path later gets it sooner. */
export function prefetch(path: string): void {
  const p = request('GET', path, undefined, { quiet401: true });
  p.catch(() => {});
  prefetched.set(path, { p, at: Date.now() });
}

/** Forgets prefetched reads (made while signed out, they would answer 401). */
export function clearPrefetched(): void {
  prefetched.clear();
}

function takePrefetched<T>(path: string): Promise<T> | undefined {
  const e = prefetched.get(path);
  if (!e) return undefined;
  prefetched.delete(path);
  return Date.now() - e.at < PREFETCH_FRESH_MS ? (e.p as Promise<T>) : undefined;
}

export const get = <T>(path: string, opts?: RequestOptions) => takePrefetched<T>(path) ?? request<T>('GET', path, undefined, opts);
export const post = <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('POST', path, body ?? {}, opts);
export const patch = <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('PATCH', path, body, opts);
export const put = <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('PUT', path, body, opts);
export const del = <T>(path: string, opts?: RequestOptions) => request<T>('DELETE', path, undefined, opts);

/** A path with query parameters. */
export function withQuery(path: string, params: URLSearchParams | Record<string, string | number | boolean | undefined>): string {
  const q = params instanceof URLSearchParams ? params : new URLSearchParams();
  if (!(params instanceof URLSearchParams)) {
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** A workspace-scoped path: ws('ws_1', 'keys', 'k_2') -> /v1/workspaces/ws_1/keys/k_2 */
export function wsPath(ws: string, ...parts: string[]): string {
  return ['/v1/workspaces', ws, ...parts].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');
}

/** A user-facing sentence for an error. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return e.message;
    if (e.status === 403) return `Not allowed: ${e.message}`;
    if (e.status === 404) return `Not found: ${e.message}`;
    if (e.status === 429) return `${e.message}${e.retryAfter ? ` (retry in ${e.retryAfter < 60 ? `${Math.ceil(e.retryAfter)} s` : `${Math.ceil(e.retryAfter / 60)} min`})` : ''}`;
    return e.message;
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

/** A list answer, whether the API sends a bare array or wraps it ({"keys": [...]}). */
export function listOf<T>(x: unknown, field: string): T[] {
  if (Array.isArray(x)) return x as T[];
  const v = (x as Record<string, unknown> | null | undefined)?.[field];
  return Array.isArray(v) ? (v as T[]) : [];
}
