// The shell: routes, sign-in gate, the workspace frame (switcher, navigation, account menu).
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { post } from './lib/api';
import { match, navigate, path, search } from './lib/router';
import { parseView, sharedQuery } from './lib/urlstate';
import { can, loadMe, me, meError, rememberNext, workspaceById, workspaces } from './lib/store';
import type { Workspace } from './lib/types';
import { ErrorBox, Loading, Toasts } from './ui';

export interface PageProps {
  ws: Workspace;
  params: Record<string, string>;
}

type Loader = () => Promise<{ default: ComponentType<any> }>;

const P = {
  signin: () => import('./pages/signin'),
  privacy: () => import('./pages/privacy'),
  newWorkspace: () => import('./pages/newworkspace'),
  invitation: () => import('./pages/invitation'),
  account: () => import('./pages/account'),
  overview: () => import('./pages/overview'),
  quickstart: () => import('./pages/quickstart'),
  explore: () => import('./pages/explore'),
  users: () => import('./pages/users'),
  user: () => import('./pages/user'),
  requests: () => import('./pages/requests'),
  keys: () => import('./pages/keys'),
  prices: () => import('./pages/prices'),
  reconciliation: () => import('./pages/reconciliation'),
  alerts: () => import('./pages/alerts'),
  alert: () => import('./pages/alert'),
  budgets: () => import('./pages/budgets'),
  reports: () => import('./pages/reports'),
  billing: () => import('./pages/billing'),
  members: () => import('./pages/members'),
  audit: () => import('./pages/audit'),
  settings: () => import('./pages/settings'),
  deletion: () => import('./pages/deletion'),
} satisfies Record<string, Loader>;

interface Route {
  pattern: string;
  load: Loader;
  /** Needs a session. */
  auth?: boolean;
  /** Inside a workspace (the frame with navigation). */
  ws?: boolean;
}

const ROUTES: Route[] = [
  { pattern: '/signin', load: P.signin },
  { pattern: '/privacy', load: P.privacy },
  { pattern: '/workspaces/new', load: P.newWorkspace, auth: true },
  { pattern: '/invitations/:ws/:invitation', load: P.invitation, auth: true },
  { pattern: '/account', load: P.account, auth: true },
  { pattern: '/workspaces/:ws', load: P.overview, auth: true, ws: true },
  { pattern: '/workspaces/:ws/quickstart', load: P.quickstart, auth: true, ws: true },
  { pattern: '/workspaces/:ws/explore', load: P.explore, auth: true, ws: true },
  { pattern: '/workspaces/:ws/users', load: P.users, auth: true, ws: true },
  { pattern: '/workspaces/:ws/users/:user', load: P.user, auth: true, ws: true },
  { pattern: '/workspaces/:ws/requests', load: P.requests, auth: true, ws: true },
  { pattern: '/workspaces/:ws/keys', load: P.keys, auth: true, ws: true },
  { pattern: '/workspaces/:ws/prices', load: P.prices, auth: true, ws: true },
  { pattern: '/workspaces/:ws/reconciliation', load: P.reconciliation, auth: true, ws: true },
  { pattern: '/workspaces/:ws/alerts', load: P.alerts, auth: true, ws: true },
  { pattern: '/workspaces/:ws/alerts/:rule', load: P.alert, auth: true, ws: true },
  { pattern: '/workspaces/:ws/budgets', load: P.budgets, auth: true, ws: true },
  { pattern: '/workspaces/:ws/reports', load: P.reports, auth: true, ws: true },
  { pattern: '/workspaces/:ws/reports/:month', load: P.reports, auth: true, ws: true },
  { pattern: '/workspaces/:ws/billing', load: P.billing, auth: true, ws: true },
  { pattern: '/workspaces/:ws/usage', load: P.billing, auth: true, ws: true },
  { pattern: '/workspaces/:ws/members', load: P.members, auth: true, ws: true },
  { pattern: '/workspaces/:ws/audit', load: P.audit, auth: true, ws: true },
  { pattern: '/workspaces/:ws/settings', load: P.settings, auth: true, ws: true },
  { pattern: '/workspaces/:ws/deletions/:job', load: P.deletion, auth: true },
];

const cache = new Map<Loader, ComponentType<any>>();

/** Starts loading the page's chunk at once, while the session is still being checked. */
export function prefetchRoute(p: string): void {
  const r = ROUTES.find((x) => match(x.pattern, p));
  if (r) void r.load().then((m) => cache.set(r.load, m.default), () => {});
}

/** Renders a lazily loaded page (one chunk per page). */
function Lazy({ load, props }: { load: Loader; props: Record<string, unknown> }) {
  const [, force] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const C = cache.get(load);
  useEffect(() => {
    if (C) return;
    let live = true;
    load().then(
      (m) => {
        cache.set(load, m.default);
        if (live) force((n) => n + 1);
      },
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [load, C]);
  if (error) return <ErrorBox error={error} title="This page could not be loaded" retry={() => location.reload()} />;
  if (!C) return <Loading />;
  return <C {...props} />;
}

export function App() {
  const p = path.value;
  void search.value;
  useEffect(() => {
    if (me.value === undefined) void loadMe();
  }, []);

  if (p === '/' || p === '') return <Home />;
  for (const r of ROUTES) {
    const params = match(r.pattern, p);
    if (!params) continue;
    if (r.auth) {
      if (me.value === undefined) return <Shell><Loading label="Checking your session…" /></Shell>;
      if (me.value === null) {
        if (meError.value) return <Shell><ErrorBox error={new Error(meError.value)} retry={() => void loadMe()} title="LLMtrack could not be reached" /></Shell>;
        return <RedirectToSignin />;
      }
    }
    if (r.ws) {
      const ws = workspaceById(params.ws);
      if (!ws) return <Shell><NotFound what="workspace" /></Shell>;
      return (
        <Frame ws={ws}>
          <Lazy load={r.load} props={{ ws, params }} />
        </Frame>
      );
    }
    const ws = params.ws ? workspaceById(params.ws) : undefined;
    // A deletion receipt of a workspace that still exists shows inside its frame.
    if (ws && r.load === P.deletion) {
      return (
        <Frame ws={ws}>
          <Lazy load={r.load} props={{ ws, params }} />
        </Frame>
      );
    }
    return (
      <Shell>
        <Lazy load={r.load} props={{ params, ws }} />
      </Shell>
    );
  }
  return <Shell><NotFound what="page" /></Shell>;
}

function RedirectToSignin() {
  useEffect(() => {
    const next = location.pathname + location.search;
    rememberNext(next);
    navigate(`/signin?next=${encodeURIComponent(next)}`, { replace: true });
  }, []);
  return <Shell><Loading label="Redirecting to sign in…" /></Shell>;
}

function Home() {
  useEffect(() => {
    if (me.value === undefined) return;
    if (me.value === null) navigate('/signin', { replace: true });
    else if (workspaces.value.length === 0) navigate('/workspaces/new', { replace: true });
    else {
      let last: string | null = null;
      try {
        last = localStorage.getItem('llmtrack.workspace');
      } catch {
        /* ignore */
      }
      const ws = workspaces.value.find((w) => w.id === last) ?? workspaces.value[0];
      navigate(`/workspaces/${ws.id}`, { replace: true });
    }
  }, [me.value]);
  if (me.value === null && meError.value) return <Shell><ErrorBox error={new Error(meError.value)} retry={() => void loadMe()} title="LLMtrack could not be reached" /></Shell>;
  return <Shell><Loading /></Shell>;
}

function NotFound({ what }: { what: string }) {
  return (
    <div class="state empty">
      <h1>Not found</h1>
      <p>
        This {what} does not exist, or you are not a member of it. <a href="/">Go to your workspaces</a>.
      </p>
    </div>
  );
}

function Brand() {
  return (
    <a href="/" class="brand">
      <img src="/favicon.svg" alt="" width={24} height={24} />
      <span>LLMtrack</span>
    </a>
  );
}

/** The page frame outside a workspace (sign-in, privacy, invitations). */
function Shell({ children }: { children: preact.ComponentChildren }) {
  return (
    <>
      <a href="#main" class="skip">Skip to content</a>
      <header class="topbar">
        <Brand />
        <div class="spacer" />
        {me.value && <AccountMenu />}
      </header>
      <main id="main" class="main narrow" tabIndex={-1}>
        {children}
      </main>
      <Footer />
      <Toasts />
    </>
  );
}

function Footer() {
  return (
    <footer class="footer">
      <a href="/privacy">Privacy</a>
    </footer>
  );
}

function AccountMenu() {
  const [busy, setBusy] = useState(false);
  return (
    <div class="account">
      <a href="/account" class="account-link" title="Your account">
        {me.value?.user.email}
      </a>
      <button
        type="button"
        class="btn ghost"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await post('/v1/auth/logout');
          } catch {
            /* the cookie may already be gone */
          }
          me.value = null;
          setBusy(false);
          navigate('/signin?signed_out=1');
        }}
      >
        Sign out
      </button>
    </div>
  );
}

const NAV: { to: string; label: string; show?: (ws: Workspace) => boolean; shared?: boolean }[] = [
  { to: '', label: 'Overview', shared: true },
  { to: '/explore', label: 'Explore', shared: true },
  { to: '/users', label: 'End-users', shared: true },
  { to: '/requests', label: 'Requests', shared: true },
  { to: '/keys', label: 'Keys' },
  { to: '/alerts', label: 'Alerts' },
  { to: '/budgets', label: 'Budgets' },
  { to: '/reports', label: 'Reports' },
  { to: '/prices', label: 'Prices' },
  { to: '/reconciliation', label: 'Reconciliation' },
  { to: '/billing', label: 'Billing' },
  { to: '/members', label: 'Members' },
  { to: '/audit', label: 'Audit log', show: (ws) => can(ws.role, 'read_audit') },
  { to: '/settings', label: 'Settings' },
];

const ANALYTICS = ['', '/explore', '/users', '/requests'];

/** The frame of a workspace: switcher, navigation, content. */
function Frame({ ws, children }: { ws: Workspace; children: preact.ComponentChildren }) {
  useEffect(() => {
    try {
      localStorage.setItem('llmtrack.workspace', ws.id);
    } catch {
      /* ignore */
    }
  }, [ws.id]);
  const base = `/workspaces/${ws.id}`;
  const p = path.value;
  const section = p.slice(base.length);
  const [navOpen, setNavOpen] = useState(false);
  // The range and filters follow the visitor between the analytics pages.
  const shared = ANALYTICS.includes(section) || section.startsWith('/users/') ? sharedQuery(parseView(search.value)) : '';
  return (
    <>
      <a href="#main" class="skip">Skip to content</a>
      <header class="topbar">
        <Brand />
        <WorkspaceSwitcher ws={ws} />
        <button type="button" class="btn ghost nav-toggle" aria-expanded={navOpen} aria-controls="nav" onClick={() => setNavOpen(!navOpen)}>
          Menu
        </button>
        <div class="spacer" />
        <AccountMenu />
      </header>
      <div class="layout">
        <nav id="nav" class={navOpen ? 'sidenav open' : 'sidenav'} aria-label="Workspace">
          <ul>
            {NAV.filter((n) => !n.show || n.show(ws)).map((n) => {
              const active = n.to === '' ? section === '' || section === '/quickstart' : section === n.to || section.startsWith(n.to + '/') || (n.to === '/billing' && section === '/usage');
              return (
                <li key={n.to}>
                  <a href={base + n.to + (n.shared && shared ? `?${shared}` : '')} aria-current={active ? 'page' : undefined} onClick={() => setNavOpen(false)}>
                    {n.label}
                  </a>
                </li>
              );
            })}
          </ul>
          <p class="nav-meta">
            <span class="badge plan">{ws.plan} plan</span>
            <span class="badge role">{ws.role}</span>
          </p>
        </nav>
        <main id="main" class="main" tabIndex={-1}>
          {children}
        </main>
      </div>
      <Footer />
      <Toasts />
    </>
  );
}

function WorkspaceSwitcher({ ws }: { ws: Workspace }) {
  const list = workspaces.value;
  return (
    <label class="switcher">
      <span class="sr-only">Workspace</span>
      <select
        value={ws.id}
        onChange={(e) => {
          const v = (e.target as HTMLSelectElement).value;
          if (v === '__new') navigate('/workspaces/new');
          else {
            const rest = location.pathname.slice(`/workspaces/${ws.id}`.length);
            // Keep the section when switching (not a specific rule, report or user).
            const section = '/' + (rest.split('/')[1] ?? '');
            navigate(`/workspaces/${v}${section === '/' ? '' : section}`);
          }
        }}
      >
        {list.map((w) => (
          <option key={w.id} value={w.id}>
            {w.name}
          </option>
        ))}
        <option value="__new">+ New workspace…</option>
      </select>
    </label>
  );
}
