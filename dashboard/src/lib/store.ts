// Global state: who is signed in, their workspaces, this deployment's settings.
import { computed, signal } from '@preact/signals';
import { ApiError, clearPrefetched, get } from './api';
import type { About, Me, Role, Workspace } from './types';

/** undefined while loading, null when signed out. */
export const me = signal<Me | null | undefined>(undefined);
export const meError = signal<string | null>(null);
/** undefined while loading, null when it could not be read. */
export const about = signal<About | null | undefined>(undefined);

let loading: Promise<void> | null = null;

/**
 * Reads who is signed in, one request at a time. `fresh` (after signing in) waits for a read
 * already under way and then reads again, since that one may have started before the session.
 */
export function loadMe(fresh = false): Promise<void> {
  if (loading && fresh) {
    const next = loading.then(() => readMe()).finally(() => {
      if (loading === next) loading = null;
    });
    loading = next;
    return next;
  }
  if (!loading) {
    const p: Promise<void> = readMe().finally(() => {
      if (loading === p) loading = null;
    });
    loading = p;
  }
  return loading;
}

async function readMe(): Promise<void> {
  try {
    me.value = await get<Me>('/v1/me', { quiet401: true });
    meError.value = null;
  } catch (e) {
    clearPrefetched();
    if (e instanceof ApiError && e.status === 401) {
      me.value = null;
      meError.value = null;
    } else {
      meError.value = e instanceof Error ? e.message : String(e);
      me.value = null;
    }
  }
}

export async function loadAbout(): Promise<About | null> {
  if (about.value) return about.value;
  about.value = undefined;
  try {
    about.value = await get<About>('/v1/about', { quiet401: true });
  } catch {
    about.value = null;
  }
  return about.value;
}

export const workspaces = computed<Workspace[]>(() => me.value?.workspaces ?? []);

export function workspaceById(id: string): Workspace | undefined {
  return workspaces.value.find((w) => w.id === id);
}

/** Replaces one workspace in the cached list (after a rename or a timezone change). */
export function updateWorkspace(ws: Workspace): void {
  const m = me.value;
  if (!m) return;
  me.value = { ...m, workspaces: m.workspaces.map((w) => (w.id === ws.id ? { ...w, ...ws } : w)) };
}

// The permission matrix of docs/PERMISSIONS.md, for showing only the buttons a role may use.
// The server stays the authority.
export type Action =
  | 'manage_keys'
  | 'manage_alerts'
  | 'manage_members'
  | 'manage_owners'
  | 'manage_settings'
  | 'read_audit'
  | 'billing'
  | 'delete_data';

const RANK: Record<Role, number> = { viewer: 0, admin: 1, owner: 2 };
const NEEDS: Record<Action, Role> = {
  manage_keys: 'admin',
  manage_alerts: 'admin',
  manage_members: 'admin',
  manage_owners: 'owner',
  manage_settings: 'admin',
  read_audit: 'admin',
  billing: 'owner',
  delete_data: 'owner',
};

export function can(role: Role | undefined, action: Action): boolean {
  if (!role) return false;
  return RANK[role] >= RANK[NEEDS[action]];
}

const NEXT_KEY = 'llmtrack.next';
/** Remembers where a signed-out visitor was going (a page path, never a credential). */
export function rememberNext(next: string): void {
  try {
    localStorage.setItem(NEXT_KEY, JSON.stringify({ next, at: Date.now() }));
  } catch {
    /* storage off */
  }
}
/** The remembered target, if recent (an hour), once. */
export function takeNext(): string | null {
  try {
    const raw = localStorage.getItem(NEXT_KEY);
    localStorage.removeItem(NEXT_KEY);
    if (!raw) return null;
    const { next, at } = JSON.parse(raw) as { next: string; at: number };
    if (Date.now() - at > 3_600_000) return null;
    return safeNext(next);
  } catch {
    return null;
  }
}

/** Only same-site app paths are followed after sign-in. */
export function safeNext(next: string | null | undefined): string | null {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/v1/') || next.startsWith('/signin')) return null;
  return next;
}
