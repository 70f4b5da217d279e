// First run: an ingest key (shown once), snippets that use it, and a live wait for the first event.
import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../app';
import { describe, get, post, withQuery, wsPath } from '../lib/api';
import { can } from '../lib/store';
import type { EventPage, NewKey } from '../lib/types';
import { CopyField, Field, PageHead } from '../ui';

export function snippets(origin: string, key: string): { id: string; label: string; code: string }[] {
  const event = { provider: 'openai', model: 'gpt-4o-mini', feature: 'quickstart', input_tokens: 1200, cached_input_tokens: 400, output_tokens: 300, latency_ms: 850 };
  const json = JSON.stringify(event);
  return [
    {
      id: 'curl',
      label: 'curl',
      code: `curl -s ${origin}/v1/events \\\n  -H "Authorization: Bearer ${key}" \\\n  -H 'Content-Type: application/json' \\\n  -d '${json}'`,
    },
    {
      id: 'python',
      label: 'Python',
      code: `import requests  # pip install requests\n\nrequests.post(\n    "${origin}/v1/events",\n    headers={"Authorization": "Bearer ${key}"},\n    json=${JSON.stringify(event, null, 4).replace(/\n/g, '\n    ').replace(/true/g, 'True')},\n    timeout=5,\n).raise_for_status()`,
    },
    {
      id: 'typescript',
      label: 'TypeScript',
      code: `const res = await fetch("${origin}/v1/events", {\n  method: "POST",\n  headers: {\n    Authorization: "Bearer ${key}",\n    "Content-Type": "application/json",\n  },\n  body: JSON.stringify(${JSON.stringify(event, null, 2).replace(/\n/g, '\n  ')}),\n});\nif (!res.ok) throw new Error(await res.text());`,
    },
    {
      id: 'opentelemetry',
      label: 'OpenTelemetry',
      code: `# Apps that export OpenTelemetry GenAI spans (the OpenAI instrumentations,\n# OpenLLMetry, OpenInference, the Vercel AI SDK) need no code: point the exporter here.\nexport OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="${origin}/otlp/v1/traces"\nexport OTEL_EXPORTER_OTLP_TRACES_HEADERS="Authorization=Bearer%20${key}"\nexport OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf"`,
    },
  ];
}

export default function Quickstart({ ws }: PageProps) {
  const [key, setKey] = useState<NewKey | null>(null);
  const [name, setName] = useState('backend');
  const [source, setSource] = useState('production');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [tab, setTab] = useState('curl');
  const [arrived, setArrived] = useState<null | { model: string; at: string }>(null);
  const [pollError, setPollError] = useState<string | null>(null);
  const origin = location.origin;
  const mayCreate = can(ws.role, 'manage_keys');

  // Waits for the first event: one request every 2 seconds while the page is open.
  useEffect(() => {
    if (arrived) return;
    let live = true;
    let timer = 0;
    const poll = async () => {
      try {
        const p = await get<EventPage>(withQuery('/v1/events', { workspace: ws.id, from: 'last_30d', limit: 1 }));
        setPollError(null);
        if (!live) return;
        if (p.events.length > 0) {
          setArrived({ model: p.events[0].model, at: p.events[0].timestamp });
          return;
        }
      } catch (e) {
        if (live) setPollError(describe(e));
      }
      if (live) timer = window.setTimeout(poll, 2000);
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [ws.id, arrived]);

  const shown = key?.secret ?? 'YOUR_INGEST_KEY';
  const snips = snippets(origin, shown);
  return (
    <div>
      <PageHead title="Quickstart" sub={`Send ${ws.name}'s first usage event in a minute.`} />
      <ol class="steps">
        <li class="card">
          <h2>1. Create an ingest key</h2>
          {!mayCreate ? (
            <p>Only admins and owners create keys. Ask one of them for an ingest key, or read the snippets below.</p>
          ) : key ? (
            <div class="secret-box" role="region" aria-label="Your new key">
              <p class="warn">
                <span aria-hidden="true">⚠ </span>
                <strong>Copy this key now.</strong> It is shown only once; LLMtrack keeps only its hash.
              </p>
              <CopyField label={`Ingest key “${key.name}” (source ${key.source})`} value={key.secret} />
            </div>
          ) : (
            <form
              onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setError(null);
                try {
                  setKey(await post<NewKey>(wsPath(ws.id, 'keys'), { name: name.trim(), source: source.trim(), scope: 'ingest' }));
                } catch (err) {
                  setError(describe(err));
                } finally {
                  setBusy(false);
                }
              }}
            >
              <div class="row">
                <Field label="Key name" hint="Where the key is used, e.g. backend.">
                  <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
                </Field>
                <Field label="Source label" hint="Attached to every event the key sends: production, staging…">
                  <input required value={source} onInput={(e) => setSource((e.target as HTMLInputElement).value)} />
                </Field>
              </div>
              {error && <p class="field-error" role="alert">{error}</p>}
              <button type="submit" class="btn primary" disabled={busy}>
                {busy ? 'Creating…' : 'Create ingest key'}
              </button>
            </form>
          )}
        </li>
        <li class="card">
          <h2>2. Send an event</h2>
          <p>One small event per LLM call: provider, model, token counts, latency. Never prompt or completion text.</p>
          <div role="tablist" aria-label="Language" class="tabs">
            {snips.map((s) => (
              <button key={s.id} type="button" role="tab" id={`tab-${s.id}`} aria-selected={tab === s.id} aria-controls={`panel-${s.id}`} tabIndex={tab === s.id ? 0 : -1} class="tab"
                onClick={() => setTab(s.id)}
                onKeyDown={(e) => {
                  const i = snips.findIndex((x) => x.id === tab);
                  if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
                    const n = snips[(i + (e.key === 'ArrowRight' ? 1 : snips.length - 1)) % snips.length];
                    setTab(n.id);
                    document.getElementById(`tab-${n.id}`)?.focus();
                  }
                }}
              >
                {s.label}
              </button>
            ))}
          </div>
          {snips.map((s) => (
            <div key={s.id} role="tabpanel" id={`panel-${s.id}`} aria-labelledby={`tab-${s.id}`} hidden={tab !== s.id}>
              <CopyField label={`${s.label} snippet`} value={s.code} multiline />
            </div>
          ))}
          <p class="small muted">
            Field reference, idempotency, how to map OpenAI, Anthropic and Google usage objects, and which span attributes become which fields: <code>docs/INGEST.md</code>. The Python
            and TypeScript clients (<code>clients/</code>) batch, retry and read provider responses for you.
          </p>
        </li>
        <li class={arrived ? 'card waiting arrived' : 'card waiting'}>
          <h2>3. See it arrive</h2>
          <p role="status" aria-live="polite" class="wait-status" data-arrived={arrived ? 'yes' : 'no'}>
            {arrived ? (
              <>
                <span aria-hidden="true">✓ </span>
                <strong>Your first event arrived</strong> ({arrived.model}).
              </>
            ) : (
              <>
                <span class="spinner" aria-hidden="true" /> Waiting for your first event…
              </>
            )}
          </p>
          {pollError && <p class="small warn">Could not check for events: {pollError}</p>}
          {arrived && (
            <a class="btn primary" href={`/workspaces/${ws.id}`}>
              Go to the overview
            </a>
          )}
        </li>
      </ol>
    </div>
  );
}
