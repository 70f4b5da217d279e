import { render } from 'preact';
import { App, prefetchRoute } from './app';
import { prefetch, setUnauthorizedHandler } from './lib/api';
import { overviewPaths } from './lib/overviewq';
import { parseView } from './lib/urlstate';
import { match, navigate, startRouter } from './lib/router';
import { loadMe, me, rememberNext } from './lib/store';
import './styles.css';

startRouter();
// Everything the first page needs starts at once: the session, the page's code and, for the
// overview, its figures (range presets need no timezone; a custom range waits for the workspace).
void loadMe();
prefetchRoute(location.pathname);
{
  const m = match('/workspaces/:ws', location.pathname);
  const view = parseView(location.search);
  if (m && view.range !== 'custom') for (const p of Object.values(overviewPaths(m.ws, view, 'UTC'))) prefetch(p);
}
// A 401 from any call means the session ended (expired, signed out elsewhere): back to sign-in,
// then back here.
setUnauthorizedHandler(() => {
  if (location.pathname.startsWith('/signin')) return;
  me.value = null;
  const next = location.pathname + location.search;
  rememberNext(next);
  navigate(`/signin?next=${encodeURIComponent(next)}`, { replace: true });
});
const root = document.getElementById('app')!;
root.textContent = '';
render(<App />, root);
