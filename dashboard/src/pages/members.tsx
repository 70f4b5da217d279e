// Members and invitations.
import { useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { del, describe, get, listOf, patch, post, wsPath } from '../lib/api';
import { date } from '../lib/format';
import { navigate } from '../lib/router';
import { can, loadMe, me } from '../lib/store';
import type { Invitation, Member, Role } from '../lib/types';
import { AsyncView, ConfirmButton, Empty, Field, PageHead, toast, useAsync } from '../ui';

export default function Members({ ws }: PageProps) {
  const members = useAsync((signal) => get<unknown>(wsPath(ws.id, 'members'), { signal }).then((x) => listOf<Member>(x, 'members')), [ws.id]);
  const manage = can(ws.role, 'manage_members');
  const owner = can(ws.role, 'manage_owners');
  const invitations = useAsync((signal) => (manage ? get<unknown>(wsPath(ws.id, 'invitations'), { signal }).then((x) => listOf<Invitation>(x, 'invitations')) : Promise.resolve([])), [ws.id, manage]);
  const myId = me.value?.user.id;
  const roles: Role[] = owner ? ['viewer', 'admin', 'owner'] : ['viewer', 'admin'];
  return (
    <div>
      <PageHead title="Members" sub="Viewers read; admins manage keys, alerts and members; owners also handle billing and deletion." />
      {manage && <Invite ws={ws.id} roles={roles} onDone={invitations.reload} />}
      <section class="card" aria-labelledby="m-h">
        <h2 id="m-h">Members</h2>
        <AsyncView a={members}>
          {(list) => (
            <div class="table-wrap">
              <table>
                <caption class="sr-only">Members</caption>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Since</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((m) => {
                    const self = m.user_id === myId;
                    const mayChange = !self && manage && (m.role !== 'owner' || owner);
                    return (
                      <tr key={m.user_id}>
                        <td>
                          {m.email}
                          {self && <span class="muted"> (you)</span>}
                        </td>
                        <td>
                          {mayChange ? (
                            <select
                              aria-label={`Role of ${m.email}`}
                              value={m.role}
                              onChange={async (e) => {
                                const role = (e.target as HTMLSelectElement).value;
                                try {
                                  await patch(wsPath(ws.id, 'members', m.user_id), { role });
                                  toast(`${m.email} is now ${role}.`);
                                } catch (err) {
                                  toast(describe(err), 'error');
                                }
                                members.reload();
                              }}
                            >
                              {roles.map((r) => (
                                <option key={r} value={r}>
                                  {r}
                                </option>
                              ))}
                            </select>
                          ) : (
                            m.role
                          )}
                        </td>
                        <td>{date(m.since, ws.timezone)}</td>
                        <td>
                          {self ? (
                            <ConfirmButton
                              label="Leave"
                              class="btn small"
                              title={`Leave ${ws.name}?`}
                              message="You lose access at once. A workspace keeps at least one owner."
                              onConfirm={async () => {
                                await del(wsPath(ws.id, 'members', m.user_id));
                                await loadMe(true);
                                navigate('/');
                              }}
                            />
                          ) : mayChange ? (
                            <ConfirmButton
                              label="Remove"
                              ariaLabel={`Remove ${m.email}`}
                              class="btn small danger"
                              danger
                              title={`Remove ${m.email}?`}
                              message="They lose access to this workspace at once. Their account stays."
                              onConfirm={async () => {
                                await del(wsPath(ws.id, 'members', m.user_id));
                                toast(`${m.email} removed.`);
                                members.reload();
                              }}
                            />
                          ) : null}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </AsyncView>
      </section>
      {manage && (
        <section class="card" aria-labelledby="i-h">
          <h2 id="i-h">Pending invitations</h2>
          <AsyncView a={invitations}>
            {(list) =>
              list.length === 0 ? (
                <Empty title="No pending invitations" />
              ) : (
                <div class="table-wrap">
                  <table>
                    <caption class="sr-only">Pending invitations</caption>
                    <thead>
                      <tr>
                        <th scope="col">Email</th>
                        <th scope="col">Role</th>
                        <th scope="col">Expires</th>
                        <th scope="col">Actions</th>
                      </tr>
                    </thead>
                    <tbody>
                      {list.map((i) => (
                        <tr key={i.id}>
                          <td>{i.email}</td>
                          <td>{i.role}</td>
                          <td>{date(i.expires_at, ws.timezone)}</td>
                          <td>
                            <ConfirmButton
                              label="Revoke"
                              ariaLabel={`Revoke the invitation of ${i.email}`}
                              class="btn small"
                              title={`Revoke the invitation of ${i.email}?`}
                              message="The link in their email stops working."
                              onConfirm={async () => {
                                await del(wsPath(ws.id, 'invitations', i.id));
                                toast('Invitation revoked.');
                                invitations.reload();
                              }}
                            />
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )
            }
          </AsyncView>
        </section>
      )}
    </div>
  );
}

function Invite({ ws, roles, onDone }: { ws: string; roles: Role[]; onDone: () => void }) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <section class="card" aria-labelledby="inv-h">
      <h2 id="inv-h">Invite someone</h2>
      <form
        class="row"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await post(wsPath(ws, 'invitations'), { email: email.trim(), role });
            toast(`Invitation sent to ${email.trim()}. It lasts 7 days.`);
            setEmail('');
            onDone();
          } catch (err) {
            setError(describe(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Email" error={error}>
          <input type="email" name="invite-email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="Role">
          <select name="invite-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <div class="field shrink">
          <span aria-hidden="true">&nbsp;</span>
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Sending…' : 'Send invitation'}
          </button>
        </div>
      </form>
    </section>
  );
}
