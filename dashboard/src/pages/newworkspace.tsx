// Create a workspace; the creator is its owner. Then the quickstart.
import { useState } from 'preact/hooks';
import { describe, post } from '../lib/api';
import { navigate } from '../lib/router';
import { loadMe, workspaces } from '../lib/store';
import { timezones } from '../lib/time';
import type { Workspace } from '../lib/types';
import { Field, PageHead } from '../ui';

export default function NewWorkspace() {
  const browserTz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const [name, setName] = useState('');
  const [tz, setTz] = useState(browserTz);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ field?: string; message: string } | null>(null);
  const first = workspaces.value.length === 0;
  return (
    <div class="card">
      <PageHead title={first ? 'Create your first workspace' : 'New workspace'} sub="A workspace holds one team's or product's usage, keys, alerts and members. You will be its owner." />
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const ws = await post<Workspace>('/v1/workspaces', { name: name.trim(), timezone: tz });
            await loadMe(true);
            navigate(`/workspaces/${ws.id}/quickstart`);
          } catch (err) {
            const m = describe(err);
            setError({ message: m, field: /timezone/i.test(m) ? 'timezone' : 'name' });
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label="Name" error={error?.field === 'name' ? error.message : null} hint="1 to 64 characters, e.g. your company or product.">
          <input name="name" required maxLength={64} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </Field>
        <Field label="Timezone" error={error?.field === 'timezone' ? error.message : null} hint="Days, months and charts follow it. You can change it later.">
          <select name="timezone" value={tz} onChange={(e) => setTz((e.target as HTMLSelectElement).value)}>
            {timezones().map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        </Field>
        <div class="actions start">
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create workspace'}
          </button>
          {!first && (
            <a class="btn ghost" href="/">
              Cancel
            </a>
          )}
        </div>
      </form>
    </div>
  );
}
