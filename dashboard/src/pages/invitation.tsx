// An invitation link from an email: accept it as the invited address.
import { useState } from 'preact/hooks';
import { describe, post } from '../lib/api';
import { navigate } from '../lib/router';
import { loadMe, me } from '../lib/store';
import type { Workspace } from '../lib/types';
import { PageHead } from '../ui';

export default function InvitationPage({ params, ws }: { params: Record<string, string>; ws?: Workspace }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (ws) {
    return (
      <div class="card">
        <PageHead title="You are already a member" />
        <p>
          You are a member of <strong>{ws.name}</strong> as {ws.role}.
        </p>
        <a class="btn primary" href={`/workspaces/${ws.id}`}>
          Open {ws.name}
        </a>
      </div>
    );
  }
  return (
    <div class="card">
      <PageHead title="Join a workspace" />
      <p>
        You were invited to a workspace on LLMtrack. You are signed in as <strong>{me.value?.user.email}</strong>; the invitation works only for the address it was sent to.
      </p>
      {error && (
        <div class="state error" role="alert">
          <p>{error}</p>
          <p class="small">
            If the invitation went to another address, <a href="/signin">sign in with that address</a> after signing out. Invitations last 7 days.
          </p>
        </div>
      )}
      <div class="actions start">
        <button
          type="button"
          class="btn primary"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              const w = await post<Workspace>(`/v1/workspaces/${encodeURIComponent(params.ws)}/invitations/${encodeURIComponent(params.invitation)}/accept`);
              await loadMe(true);
              navigate(`/workspaces/${w.id}`);
            } catch (e) {
              setError(describe(e));
            } finally {
              setBusy(false);
            }
          }}
        >
          {busy ? 'Joining…' : 'Accept the invitation'}
        </button>
        <a class="btn ghost" href="/">
          Not now
        </a>
      </div>
    </div>
  );
}
