// Workspace settings: name, timezone, the OpenTelemetry attributes that name feature and user;
// the cost-allocation tag keys;
// your weekly digest email; data deletion (a range, or the whole workspace).
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { describe, get, patch, post, put, wsPath } from '../lib/api';
import { navigate } from '../lib/router';
import { can, loadMe, updateWorkspace } from '../lib/store';
import { dateTime } from '../lib/format';
import { type TagKeyInfo, type WorkspaceTags, OTHER_VALUE, addTagKey, tagDimension, tagErrorMessage, tagKeysChanged } from '../lib/tags';
import { localDate, nextDay, startOfLocalDay, timezones } from '../lib/time';
import type { Workspace } from '../lib/types';
import { Badge, ConfirmButton, ErrorBox, Field, Loading, PageHead, Table, toast, useAsync } from '../ui';

export default function Settings({ ws }: PageProps) {
  const manage = can(ws.role, 'manage_settings');
  const owner = can(ws.role, 'delete_data');
  return (
    <div>
      <PageHead title="Settings" sub={ws.name} />
      <General ws={ws} manage={manage} />
      <SpanAttributes ws={ws} manage={manage} />
      <CostTags ws={ws} manage={manage} />
      <WeeklyDigest ws={ws} />
      {owner && <DeleteData ws={ws} />}
      {owner && <DeleteWorkspace ws={ws} />}
      <section class="card">
        <h2>Your account</h2>
        <p>
          Report emails, signing out everywhere and deleting your account are on <a href="/account">your account page</a>.
        </p>
      </section>
    </div>
  );
}

interface DigestSubscription {
  subscribed: boolean;
}

/** Each member's own opt-in to the weekly digest email (off by default). */
function WeeklyDigest({ ws }: { ws: Workspace }) {
  const sub = useAsync((signal) => get<DigestSubscription>(wsPath(ws.id, 'digest'), { signal }), [ws.id]);
  const [busy, setBusy] = useState(false);
  const on = sub.data?.subscribed ?? false;
  return (
    <section class="card">
      <h2>Weekly digest</h2>
      <p>
        Every Monday morning ({ws.timezone}): last week's cost and its change, the features and models that moved most, the alerts that
        fired and where each budget stands. Only to you, and only while you are a member.
      </p>
      <label class="check">
        <input
          type="checkbox"
          checked={on}
          disabled={busy || sub.loading || sub.error !== undefined}
          onChange={async (e) => {
            const want = (e.target as HTMLInputElement).checked;
            setBusy(true);
            try {
              sub.set(await put<DigestSubscription>(wsPath(ws.id, 'digest'), { subscribed: want }));
              toast(want ? 'You will get the weekly digest.' : 'Weekly digest emails are off.');
            } catch (err) {
              toast(describe(err), 'error');
            } finally {
              setBusy(false);
            }
          }}
        />
        <span>Email me a weekly digest</span>
      </label>
      {sub.error !== undefined && (
        <p class="field-error" role="alert">
          {describe(sub.error)}
        </p>
      )}
    </section>
  );
}

function General({ ws, manage }: { ws: Workspace; manage: boolean }) {
  const [name, setName] = useState(ws.name);
  const [tz, setTz] = useState(ws.timezone);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ field: string; message: string } | null>(null);
  if (!manage) {
    return (
      <section class="card">
        <h2>General</h2>
        <dl class="kv">
          <dt>Name</dt>
          <dd>{ws.name}</dd>
          <dt>Timezone</dt>
          <dd>{ws.timezone}</dd>
          <dt>Workspace id</dt>
          <dd>
            <code>{ws.id}</code>
          </dd>
        </dl>
      </section>
    );
  }
  return (
    <section class="card">
      <h2>General</h2>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const w = await patch<Workspace>(wsPath(ws.id), { name: name.trim(), timezone: tz });
            updateWorkspace({ ...ws, ...w });
            toast('Settings saved.');
          } catch (err) {
            const m = describe(err);
            setError({ field: /timezone/i.test(m) ? 'timezone' : 'name', message: m });
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="row">
          <Field label="Name" error={error?.field === 'name' ? error.message : null}>
            <input name="ws-name" required maxLength={64} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </Field>
          <Field label="Timezone" error={error?.field === 'timezone' ? error.message : null} hint="Days and months on every page follow it.">
            <select name="ws-timezone" value={tz} onChange={(e) => setTz((e.target as HTMLSelectElement).value)}>
              {timezones().map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <p class="small muted">
          Workspace id: <code>{ws.id}</code>
        </p>
        <button type="submit" class="btn primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
      </form>
    </section>
  );
}

/** Attribute names typed as a list: commas or spaces between them. */
export function attributeList(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

function SpanAttributes({ ws, manage }: { ws: Workspace; manage: boolean }) {
  const labels = ws.span_labels ?? { feature: [], user: [] };
  const [feature, setFeature] = useState(labels.feature.join(', '));
  const [user, setUser] = useState(labels.user.join(', '));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const intro = (
    <p>
      Spans sent to <code>{location.origin}/otlp</code> become events. These span attributes (looked up on the span, then on its resource; the first one present wins) name each event's feature
      and end-user. Events already stored keep their labels.
    </p>
  );
  if (!manage) {
    return (
      <section class="card">
        <h2>OpenTelemetry attributes</h2>
        {intro}
        <dl class="kv">
          <dt>Feature</dt>
          <dd>{labels.feature.join(', ') || 'none'}</dd>
          <dt>End-user</dt>
          <dd>{labels.user.join(', ') || 'none'}</dd>
        </dl>
      </section>
    );
  }
  return (
    <section class="card">
      <h2>OpenTelemetry attributes</h2>
      {intro}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const w = await patch<Workspace>(wsPath(ws.id), { span_labels: { feature: attributeList(feature), user: attributeList(user) } });
            updateWorkspace({ ...ws, ...w });
            toast('OpenTelemetry attributes saved.');
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="row">
          <Field label="Feature attributes" hint="e.g. llmtrack.feature, app.feature, service.name">
            <input name="span-feature" value={feature} onInput={(e) => setFeature((e.target as HTMLInputElement).value)} />
          </Field>
          <Field label="End-user attributes" hint="e.g. enduser.id, user.id. Not gen_ai.conversation.id: it names a conversation.">
            <input name="span-user" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} />
          </Field>
        </div>
        {error && (
          <p class="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save attributes'}
        </button>
      </form>
    </section>
  );
}

/** The declared tag keys: since when each tags events, how many values it keeps, and whether it is full. */
function TagKeyTable({ ws, keys, max }: { ws: Workspace; keys: TagKeyInfo[]; max: number }) {
  return (
    <Table
      caption="Declared tag keys"
      captionHidden
      rows={keys}
      rowKey={(k) => k.key}
      columns={[
        {
          key: 'key',
          label: 'Key',
          render: (k) => (
            <a href={`/workspaces/${ws.id}/explore?by=${encodeURIComponent(k.dimension || tagDimension(k.key))}`} title={`Break cost down by ${k.key}`}>
              <code>{k.key}</code>
            </a>
          ),
        },
        { key: 'since', label: `Tagging since (${ws.timezone})`, render: (k) => dateTime(k.since, ws.timezone) },
        {
          key: 'values',
          label: 'Values kept',
          render: (k) => (
            <span data-tag-values={k.key}>
              {k.values.length} / {k.max_values || max}
              {k.overflowed && (
                <>
                  {' '}
                  <Badge kind="warn">over the limit</Badge>
                </>
              )}
            </span>
          ),
        },
      ]}
    />
  );
}

/** Cost-allocation tags: metadata keys whose values become breakdown dimensions and FOCUS tags. */
function CostTags({ ws, manage }: { ws: Workspace; manage: boolean }) {
  const tags = useAsync((signal) => get<WorkspaceTags>(wsPath(ws.id, 'tags'), { signal }), [ws.id]);
  const [draft, setDraft] = useState<string[] | null>(null);
  const [typed, setTyped] = useState('');
  const [addError, setAddError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const t = tags.data;
  const saved = t?.keys.map((k) => k.key) ?? [];
  const keys = draft ?? saved;
  const maxKeys = t?.max_keys ?? 3;
  const maxValues = t?.max_values ?? 100;
  const example = saved[0] ?? 'team';
  const intro = (
    <>
      <p>
        Up to {maxKeys} metadata keys (such as <code>team</code>, <code>project</code> or <code>customer</code>) whose values become breakdown dimensions in{' '}
        <a href={`/workspaces/${ws.id}/explore`}>Explore</a> and tags in the FOCUS export. Each key keeps its first {maxValues} values; later new values are counted under “{OTHER_VALUE}”.
      </p>
      <p class="small muted">
        Events carry them in their metadata: <code>{`"metadata": {"${example}": "search"}`}</code>
      </p>
    </>
  );
  const body = tags.error ? (
    <ErrorBox error={tags.error} retry={tags.reload} />
  ) : !t ? (
    <Loading />
  ) : t.keys.length === 0 ? (
    <p class="muted" data-no-tags>
      No tag keys declared yet.
    </p>
  ) : (
    <TagKeyTable ws={ws} keys={t.keys} max={maxValues} />
  );
  if (!manage) {
    return (
      <section class="card" aria-labelledby="tags-h">
        <h2 id="tags-h">Cost allocation tags</h2>
        {intro}
        {body}
        <p class="small muted">Admins and owners can change the tag keys.</p>
      </section>
    );
  }
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      tags.set(await put<WorkspaceTags>(wsPath(ws.id, 'tags'), { keys }));
      setDraft(null);
      toast('Tag keys saved.');
    } catch (err) {
      setError(tagErrorMessage(describe(err), keys));
    } finally {
      setBusy(false);
    }
  };
  const changed = tagKeysChanged(saved, keys);
  return (
    <section class="card" aria-labelledby="tags-h">
      <h2 id="tags-h">Cost allocation tags</h2>
      {intro}
      {body}
      {t && (
        <>
          <h3 id="tag-draft-h">Keys to declare</h3>
          <ul class="chips tag-draft" aria-labelledby="tag-draft-h">
            {keys.length === 0 && <li class="muted small">None: tagging is off.</li>}
            {keys.map((k) => (
              <li key={k} class="chip">
                <code>{k}</code>
                {!saved.includes(k) && <span class="small"> (new)</span>}
                <button
                  type="button"
                  class="chip-x"
                  aria-label={`Remove tag key ${k}`}
                  onClick={() => {
                    setDraft(keys.filter((x) => x !== k));
                    setError(null);
                  }}
                >
                  ✕
                </button>
              </li>
            ))}
          </ul>
          <form
            class="control-row tag-editor"
            onSubmit={(e) => {
              e.preventDefault();
              const r = addTagKey(keys, typed, maxKeys);
              if ('error' in r) setAddError(r.error);
              else {
                setDraft(r.keys);
                setTyped('');
                setAddError(null);
                setError(null);
              }
            }}
          >
            <label class="inline">
              <span>Add a tag key</span>
              <input name="tag-key" value={typed} maxLength={64} autoComplete="off" placeholder="e.g. team" aria-invalid={addError ? true : undefined} onInput={(e) => setTyped((e.target as HTMLInputElement).value)} />
            </label>
            <button type="submit" class="btn">
              Add key
            </button>
          </form>
          {addError && (
            <p class="field-error" role="alert">
              <span aria-hidden="true">⚠ </span>
              {addError}
            </p>
          )}
          <p class="small muted">A new key tags events from the current hour on; a removed key's values are no longer shown.</p>
          {error && (
            <p class="field-error" role="alert">
              <span aria-hidden="true">⚠ </span>
              {error}
            </p>
          )}
          <div class="actions start">
            <button type="button" class="btn primary" disabled={busy || !changed} onClick={() => void save()}>
              {busy ? 'Saving…' : 'Save tag keys'}
            </button>
            {changed && (
              <button
                type="button"
                class="btn ghost"
                disabled={busy}
                onClick={() => {
                  setDraft(null);
                  setError(null);
                  setAddError(null);
                }}
              >
                Undo changes
              </button>
            )}
          </div>
        </>
      )}
    </section>
  );
}

function DeleteData({ ws }: { ws: Workspace }) {
  const today = localDate(Date.now(), ws.timezone);
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [source, setSource] = useState('');
  const all = !from && !to;
  const body = () => {
    const b: Record<string, string> = { scope: 'usage', confirm: ws.name };
    if (from) b.from = startOfLocalDay(from, ws.timezone)!;
    if (to) b.to = startOfLocalDay(nextDay(to), ws.timezone)!;
    if (source.trim()) b.source = source.trim();
    return b;
  };
  return (
    <section class="card danger-zone">
      <h2>Delete usage data</h2>
      <p>Deletes events for real, with the rollups, usage counters and exports derived from them. A receipt says what was deleted. Leave both dates empty to delete all usage data.</p>
      <div class="row">
        <Field label={`From (${ws.timezone})`}>
          <input type="date" name="del-from" value={from} max={today} onChange={(e) => setFrom((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="To (inclusive)">
          <input type="date" name="del-to" value={to} min={from || undefined} max={today} onChange={(e) => setTo((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="Only source (optional)">
          <input name="del-source" value={source} onInput={(e) => setSource((e.target as HTMLInputElement).value)} />
        </Field>
      </div>
      <ConfirmButton
        label="Delete usage data…"
        danger
        title="Delete usage data?"
        confirmText={ws.name}
        confirmLabel="Delete for good"
        message={
          <p>
            {all ? 'Every event of this workspace' : `Events from ${from || 'the beginning'} to ${to || 'now'} (${ws.timezone})`}
            {source.trim() ? ` sent with source “${source.trim()}”` : ''} will be deleted. This cannot be undone.
          </p>
        }
        onConfirm={async () => {
          const job = await post<{ id: string }>(wsPath(ws.id, 'deletions'), body());
          navigate(`/workspaces/${ws.id}/deletions/${job.id}`);
        }}
      />
    </section>
  );
}

function DeleteWorkspace({ ws }: { ws: Workspace }) {
  return (
    <section class="card danger-zone">
      <h2>Delete this workspace</h2>
      <p>
        Deletes everything it has: events, rollups, keys (they stop working at once), members, invitations, alerts, the audit log, billing records and reports; an active subscription is cancelled. It
        disappears from every member's list at once, and you get a receipt.
      </p>
      <ConfirmButton
        label="Delete workspace…"
        danger
        title={`Delete ${ws.name}?`}
        confirmText={ws.name}
        confirmLabel="Delete the workspace"
        message={<p>This cannot be undone.</p>}
        onConfirm={async () => {
          const job = await post<{ id: string }>(wsPath(ws.id, 'deletions'), { scope: 'workspace', confirm: ws.name });
          await loadMe(true);
          navigate(`/workspaces/${ws.id}/deletions/${job.id}`);
        }}
      />
    </section>
  );
}
