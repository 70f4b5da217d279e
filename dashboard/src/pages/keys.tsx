// API keys: list, create (copy-once), deactivate, reactivate, rotate, delete, each confirmed.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { del, describe, get, listOf, post, wsPath } from '../lib/api';
import { ago, dateTime } from '../lib/format';
import { can } from '../lib/store';
import type { Key, NewKey } from '../lib/types';
import { AsyncView, Badge, ConfirmButton, CopyField, Empty, Field, Modal, PageHead, toast, useAsync } from '../ui';

export default function Keys({ ws }: PageProps) {
  const a = useAsync((signal) => get<unknown>(wsPath(ws.id, 'keys'), { signal }).then((x) => listOf<Key>(x, 'keys')), [ws.id]);
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<NewKey | null>(null);
  const manage = can(ws.role, 'manage_keys');
  const act = async (k: Key, action: 'deactivate' | 'reactivate' | 'rotate' | 'delete') => {
    if (action === 'delete') await del(wsPath(ws.id, 'keys', k.id));
    else {
      const r = await post<NewKey | Key>(wsPath(ws.id, 'keys', k.id, action));
      if (action === 'rotate' && r && 'secret' in r) setSecret(r as NewKey);
    }
    toast(`Key “${k.name}” ${action === 'delete' ? 'deleted' : action === 'rotate' ? 'rotated' : action + 'd'}.`);
    a.reload();
  };
  return (
    <div>
      <PageHead title="API keys" sub="Ingest keys send events; read keys query analytics from scripts. A raw key is shown once, when it is made.">
        {manage && (
          <button type="button" class="btn primary" onClick={() => setCreating(true)}>
            Create key
          </button>
        )}
      </PageHead>
      <AsyncView a={a}>
        {(keys) =>
          keys.length === 0 ? (
            <Empty title="No keys yet">{manage ? 'Create an ingest key to start sending events.' : 'An admin or owner can create keys.'}</Empty>
          ) : (
            <div class="table-wrap card">
              <table>
                <caption class="sr-only">API keys</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Prefix</th>
                    <th scope="col">Source</th>
                    <th scope="col">Scope</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last used</th>
                    {manage && <th scope="col">Actions</th>}
                  </tr>
                </thead>
                <tbody>
                  {keys.map((k) => (
                    <tr key={k.id} data-key={k.id}>
                      <td>{k.name}</td>
                      <td>
                        <code>{k.prefix}…</code>
                      </td>
                      <td>{k.source}</td>
                      <td>{k.scope}</td>
                      <td>{k.state === 'active' ? <Badge kind="good">✓ active</Badge> : <Badge kind="muted">○ deactivated</Badge>}</td>
                      <td>
                        {dateTime(k.created_at, ws.timezone)}
                        {k.created_by && <div class="small muted">by {k.created_by}</div>}
                      </td>
                      <td title={k.last_used_at ?? undefined}>{ago(k.last_used_at)}</td>
                      {manage && (
                        <td class="row-actions">
                          {k.state === 'active' ? (
                            <ConfirmButton label="Deactivate" ariaLabel={`Deactivate key ${k.name}`} title={`Deactivate “${k.name}”?`} message="Requests with this key are refused at once (401). You can reactivate it later." onConfirm={() => act(k, 'deactivate')} class="btn small" />
                          ) : (
                            <ConfirmButton label="Reactivate" ariaLabel={`Reactivate key ${k.name}`} title={`Reactivate “${k.name}”?`} message="The key works again at once. Active keys count against your plan's limit." onConfirm={() => act(k, 'reactivate')} class="btn small" />
                          )}
                          {k.state === 'active' && (
                            <ConfirmButton label="Rotate" ariaLabel={`Rotate key ${k.name}`} title={`Rotate “${k.name}”?`} message="A new key with the same name, source and scope is made and shown once; this one is deactivated at once. Update your app with the new key." onConfirm={() => act(k, 'rotate')} class="btn small" />
                          )}
                          <ConfirmButton label="Delete" ariaLabel={`Delete key ${k.name}`} title={`Delete “${k.name}”?`} danger message="The key stops working at once and cannot be restored. Events it sent are kept." onConfirm={() => act(k, 'delete')} class="btn small danger" />
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </AsyncView>
      {creating && (
        <CreateKey
          ws={ws.id}
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setSecret(k);
            a.reload();
          }}
        />
      )}
      {secret && <SecretModal k={secret} onClose={() => setSecret(null)} />}
    </div>
  );
}

function CreateKey({ ws, onClose, onCreated }: { ws: string; onClose: () => void; onCreated: (k: NewKey) => void }) {
  const [name, setName] = useState('');
  const [source, setSource] = useState('production');
  const [scope, setScope] = useState<'ingest' | 'read'>('ingest');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal title="Create an API key" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            onCreated(await post<NewKey>(wsPath(ws, 'keys'), { name: name.trim(), source: source.trim(), scope }));
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Name" hint="What uses it: backend, batch-jobs…">
          <input name="name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="Source label" hint="Attached to every event the key sends.">
          <input name="source" required value={source} onInput={(e) => setSource((e.target as HTMLInputElement).value)} />
        </Field>
        <fieldset class="radios">
          <legend>Scope</legend>
          <label>
            <input type="radio" name="scope" checked={scope === 'ingest'} onChange={() => setScope('ingest')} /> Ingest: sends events
          </label>
          <label>
            <input type="radio" name="scope" checked={scope === 'read'} onChange={() => setScope('read')} /> Read: queries analytics
          </label>
        </fieldset>
        {error && <p class="field-error" role="alert">{error}</p>}
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function SecretModal({ k, onClose }: { k: NewKey; onClose: () => void }) {
  return (
    <Modal title="Copy your new key" onClose={onClose}>
      <p class="warn">
        <span aria-hidden="true">⚠ </span>
        <strong>This is the only time the key is shown.</strong> LLMtrack keeps only its hash. Store it in your secrets manager now.
      </p>
      <CopyField label={`${k.scope === 'read' ? 'Read' : 'Ingest'} key “${k.name}” (source ${k.source})`} value={k.secret} />
      <div class="actions">
        <button type="button" class="btn primary" onClick={onClose}>
          I have copied it
        </button>
      </div>
    </Modal>
  );
}
