import { render } from 'preact';
import { App, prefetchRoute } from './app';
import { setUnauthorizedHandler } from './lib/api';
import { navigate, startRouter } from './lib/router';
import { me, rememberNext } from './lib/store';
import './styles.css';

startRouter();
prefetchRoute(location.pathname);
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
