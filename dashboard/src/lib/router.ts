// A tiny history router: the path and query string are signals; links are intercepted.
import { signal } from '@preact/signals';

const loc = typeof location === 'undefined' ? { pathname: '/', search: '' } : location;
export const path = signal(loc.pathname);
export const search = signal(loc.search);

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = new URL(to, location.origin);
  const target = url.pathname + url.search + url.hash;
  if (target === location.pathname + location.search + location.hash) return;
  if (opts.replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  sync();
  if (!opts.replace && !url.hash) window.scrollTo(0, 0);
}

/** Replace the query string only (view state changes) without adding to history. */
export function setSearch(q: string, opts: { push?: boolean } = {}): void {
  const s = q ? `?${q}` : '';
  if (s === location.search) return;
  const target = location.pathname + s;
  if (opts.push) history.pushState(null, '', target);
  else history.replaceState(null, '', target);
  sync();
}

function sync(): void {
  path.value = location.pathname;
  search.value = location.search;
}

export function startRouter(): void {
  addEventListener('popstate', sync);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.dataset.external !== undefined) return;
    const href = a.getAttribute('href');
    if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/v1/')) return;
    e.preventDefault();
    navigate(href);
  });
}

/** Matches a pattern such as /workspaces/:ws/alerts/:rule against a path. */
export function match(pattern: string, p: string): Record<string, string> | null {
  const a = pattern.split('/').filter(Boolean);
  const b = p.split('/').filter(Boolean);
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) {
      try {
        out[a[i].slice(1)] = decodeURIComponent(b[i]);
      } catch {
        return null;
      }
    } else if (a[i] !== b[i]) return null;
  }
  return out;
}
