// The signed-in person: report emails, sign out everywhere, account deletion.
import { useState } from 'preact/hooks';
import { describe, get, patch, post } from '../lib/api';
import { navigate } from '../lib/router';
import { me } from '../lib/store';
import type { User } from '../lib/types';
import { AsyncView, ConfirmButton, PageHead, toast, useAsync } from '../ui';

interface Preview {
  email: string;
  workspaces_deleted: { id: string; name: string }[];
  workspaces_left: { id: string; name: string }[];
}

export default function Account() {
  const user = me.value!.user;
  const [busy, setBusy] = useState(false);
  const [showDelete, setShowDelete] = useState(false);
  return (
    <div>
      <PageHead title="Your account" sub={<>Signed in as <strong>{user.email}</strong></>} />
      <section class="card">
        <h2>Monthly report emails</h2>
        <p>Owners and admins get each workspace's monthly report by email. {user.monthly_reports ? 'You receive them.' : 'You have turned them off.'}</p>
        <label class="check">
          <input
            type="checkbox"
            checked={user.monthly_reports}
            disabled={busy}
            onChange={async (e) => {
              const on = (e.target as HTMLInputElement).checked;
              setBusy(true);
              try {
                const u = await patch<User>('/v1/me', { monthly_reports: on });
                me.value = { ...me.value!, user: u };
                toast(on ? 'Monthly report emails are on.' : 'Monthly report emails are off.');
              } catch (err) {
                toast(describe(err), 'error');
              } finally {
                setBusy(false);
              }
            }}
          />
          <span>Email me the monthly reports</span>
        </label>
      </section>
      <section class="card">
        <h2>Sessions</h2>
        <p>Signing out everywhere ends every session of your account, on every device, this one included.</p>
        <ConfirmButton
          label="Sign out everywhere"
          title="Sign out everywhere?"
          message="Every session of your account ends, on every device. You will need a new code to sign in."
          onConfirm={async () => {
            await post('/v1/auth/logout?everywhere=true');
            me.value = null;
            navigate('/signin?signed_out=1');
          }}
        />
      </section>
      <section class="card danger-zone">
        <h2>Delete your account</h2>
        <p>Your sessions end at once. Workspaces you alone own are deleted with everything in them; others keep going without you.</p>
        {showDelete ? <DeleteAccount /> : (
          <button type="button" class="btn danger" onClick={() => setShowDelete(true)}>
            Delete my account…
          </button>
        )}
      </section>
    </div>
  );
}

function DeleteAccount() {
  const a = useAsync(() => get<Preview>('/v1/account/deletion'), []);
  return (
    <AsyncView a={a}>
      {(p) => (
        <div>
          {p.workspaces_deleted.length > 0 ? (
            <>
              <p>
                <strong>These workspaces are deleted with your account</strong> (you are their only owner):
              </p>
              <ul>
                {p.workspaces_deleted.map((w) => (
                  <li key={w.id}>
                    {w.name} <code>{w.id}</code>
                  </li>
                ))}
              </ul>
            </>
          ) : (
            <p>No workspace is deleted with your account.</p>
          )}
          {p.workspaces_left.length > 0 && (
            <>
              <p>You leave these workspaces; they stay with their other owners:</p>
              <ul>
                {p.workspaces_left.map((w) => (
                  <li key={w.id}>{w.name}</li>
                ))}
              </ul>
            </>
          )}
          <ConfirmButton
            label="Delete my account"
            title="Delete your account?"
            danger
            confirmText={p.email}
            message={<p>This cannot be undone. {p.workspaces_deleted.length > 0 ? `${p.workspaces_deleted.length} workspace(s) and all their data will be deleted; receipts are emailed to you.` : ''}</p>}
            onConfirm={async () => {
              await post('/v1/account/deletion', { confirm: p.email, workspaces: p.workspaces_deleted.map((w) => w.id) });
              me.value = null;
              navigate('/signin?signed_out=1');
            }}
          />
        </div>
      )}
    </AsyncView>
  );
}
