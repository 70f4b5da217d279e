import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, clearPrefetched, del, prefetch, describe as describeError, fieldOf, get, listOf, patch, post, setFetch, setUnauthorizedHandler, withQuery, wsPath } from '../src/lib/api';

function respond(status: number, body?: unknown, headers: Record<string, string> = {}) {
  return vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => new Response(body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } }));
}

afterEach(() => setUnauthorizedHandler(null));

/** The error a request rejects with; a request that succeeds fails the test. */
const fail = (p: Promise<unknown>): Promise<ApiError> =>
  p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (x: ApiError) => x,
  );

describe('the API client', () => {
  it('sends the session cookie (same origin) and JSON, never an Authorization header', async () => {
    const f = respond(200, { ok: 1 });
    setFetch(f as unknown as typeof fetch);
    expect(await post('/v1/workspaces', { name: 'Acme' })).toEqual({ ok: 1 });
    const [url, init] = f.mock.calls[0];
    expect(url).toBe('/v1/workspaces');
    expect(init!.method).toBe('POST');
    expect(init!.credentials).toBe('same-origin');
    expect(init!.body).toBe('{"name":"Acme"}');
    const h = init!.headers as Record<string, string>;
    expect(h['Content-Type']).toBe('application/json');
    expect(Object.keys(h).map((k) => k.toLowerCase())).not.toContain('authorization');
  });
  it('uses each method and handles 204', async () => {
    const f = respond(204);
    setFetch(f as unknown as typeof fetch);
    expect(await del('/v1/x')).toBeUndefined();
    await patch('/v1/me', { monthly_reports: false });
    expect(f.mock.calls.map((c) => c[1]!.method)).toEqual(['DELETE', 'PATCH']);
    expect(f.mock.calls[0][1]!.body).toBeUndefined();
  });
  it('turns the error envelope into an ApiError with code, message and field', async () => {
    setFetch(respond(400, { error: { code: 'invalid_rule', message: '`budget_usd` must be more than 0' } }) as unknown as typeof fetch);
    const e = await fail(post('/v1/workspaces/ws/alerts', {}));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.code).toBe('invalid_rule');
    expect(e.message).toBe('`budget_usd` must be more than 0');
    expect(e.field).toBe('budget_usd');
  });
  it('copes with a non-JSON error body', async () => {
    setFetch(respond(502, '<html>bad gateway</html>') as unknown as typeof fetch);
    const e = await fail(get('/v1/me'));
    expect(e.status).toBe(502);
    expect(e.code).toBe('http_502');
  });
  it('reports 429 with Retry-After', async () => {
    setFetch(respond(429, { error: { code: 'too_many_requests', message: 'too many sign-in attempts' } }, { 'Retry-After': '600' }) as unknown as typeof fetch);
    const e = await fail(post('/v1/auth/email', { email: 'a@b.c' }));
    expect(e.retryAfter).toBe(600);
    expect(describeError(e)).toBe('too many sign-in attempts (retry in 10 min)');
  });
  it('retries a rate-limited read once after a short Retry-After, never a write', async () => {
    let n = 0;
    const f = vi.fn(async () => (n++ === 0 ? new Response('{"error":{"code":"rate_limited","message":"slow down"}}', { status: 429, headers: { 'Retry-After': '0' } }) : new Response('{"ok":true}', { status: 200 })));
    setFetch(f as unknown as typeof fetch);
    expect(await get('/v1/stats/summary')).toEqual({ ok: true });
    expect(f).toHaveBeenCalledTimes(2);
    n = 0;
    f.mockClear();
    const e = await fail(post('/v1/exports', {}));
    expect(e.status).toBe(429);
    expect(f).toHaveBeenCalledTimes(1);
    // A long wait is left to the person.
    setFetch(respond(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '30' }) as unknown as typeof fetch);
    const e2 = await fail(get('/v1/stats/summary'));
    expect(describeError(e2)).toBe('slow down (retry in 30 s)');
  });
  it('hands a prefetched read to the first page that asks for it, once', async () => {
    const f = respond(200, { n: 1 });
    setFetch(f as unknown as typeof fetch);
    prefetch('/v1/stats/summary?workspace=ws&from=last_7d');
    expect(f).toHaveBeenCalledTimes(1);
    expect(await get('/v1/stats/summary?workspace=ws&from=last_7d')).toEqual({ n: 1 });
    expect(f).toHaveBeenCalledTimes(1);
    await get('/v1/stats/summary?workspace=ws&from=last_7d');
    expect(f).toHaveBeenCalledTimes(2);
    prefetch('/v1/me');
    clearPrefetched();
    await get('/v1/me');
    expect(f).toHaveBeenCalledTimes(4);
  });
  it('calls the sign-in handler on 401 unless told to be quiet', async () => {
    setFetch(respond(401, { error: { code: 'unauthorized', message: 'sign in' } }) as unknown as typeof fetch);
    const h = vi.fn();
    setUnauthorizedHandler(h);
    await get('/v1/me', { quiet401: true }).catch(() => 0);
    expect(h).not.toHaveBeenCalled();
    await get('/v1/workspaces').catch(() => 0);
    expect(h).toHaveBeenCalledTimes(1);
  });
  it('says plainly when the network fails', async () => {
    setFetch((async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch);
    const e = await fail(get('/v1/me'));
    expect(e.status).toBe(0);
    expect(e.code).toBe('network');
  });
  it('builds paths and queries', () => {
    expect(wsPath('ws_1', 'keys', 'k/2', 'rotate')).toBe('/v1/workspaces/ws_1/keys/k%2F2/rotate');
    expect(withQuery('/v1/events', { workspace: 'ws', limit: 50, cursor: undefined })).toBe('/v1/events?workspace=ws&limit=50');
    expect(withQuery('/v1/x', {})).toBe('/v1/x');
  });
  it('reads bare and wrapped lists', () => {
    expect(listOf([1, 2], 'keys')).toEqual([1, 2]);
    expect(listOf({ keys: [3] }, 'keys')).toEqual([3]);
    expect(listOf(null, 'keys')).toEqual([]);
  });
  it('finds the field a message names', () => {
    expect(fieldOf('`webhook_url` must be https')).toBe('webhook_url');
    expect(fieldOf('no field here')).toBeUndefined();
    expect(fieldOf('x', { error: { field: 'name' } })).toBe('name');
  });
});
