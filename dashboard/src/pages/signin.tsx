// Sign in by emailed code; the emailed link (/signin?email=…&code=…) signs in directly.
import { useEffect, useRef, useState } from 'preact/hooks';
import { describe, post } from '../lib/api';
import { navigate, search } from '../lib/router';
import { loadMe, me, rememberNext, safeNext, takeNext } from '../lib/store';
import { Loading, PageHead } from '../ui';

export default function SignIn() {
  const q = new URLSearchParams(search.value);
  const linkEmail = q.get('email') ?? '';
  const linkCode = q.get('code') ?? '';
  const nextParam = safeNext(q.get('next'));
  const [email, setEmail] = useState(linkEmail);
  const [code, setCode] = useState('');
  const [step, setStep] = useState<'email' | 'code' | 'auto'>(linkEmail && linkCode ? 'auto' : 'email');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const codeRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (nextParam) rememberNext(nextParam);
  }, [nextParam]);

  const finishing = useRef(false);
  const finish = async () => {
    finishing.current = true;
    await loadMe(true);
    const target = nextParam ?? takeNext() ?? '/';
    navigate(target, { replace: true });
  };

  // Already signed in (and not following a sign-in link): go on.
  useEffect(() => {
    if (step !== 'auto' && me.value && !finishing.current) navigate(nextParam ?? takeNext() ?? '/', { replace: true });
  }, [me.value]);

  // The emailed link: verify at once.
  useEffect(() => {
    if (step !== 'auto') return;
    let live = true;
    (async () => {
      try {
        await post('/v1/auth/verify', { email: linkEmail, code: linkCode }, { quiet401: true });
        if (live) await finish();
      } catch (e) {
        if (!live) return;
        setError(`${describe(e)}`);
        setStep('email');
        history.replaceState(null, '', '/signin');
      }
    })();
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    if (step === 'code') codeRef.current?.focus();
  }, [step]);

  if (step === 'auto') return <Loading label="Signing you in…" />;

  return (
    <div class="signin card">
      <PageHead title="Sign in to LLMtrack" sub="No password: we email you a 6-digit code. A new address signs up the same way." />
      {q.get('signed_out') && <p class="notice" role="status">You are signed out.</p>}
      {step === 'email' ? (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              const r = await post<{ message: string }>('/v1/auth/email', { email: email.trim() }, { quiet401: true });
              setInfo(r?.message ?? `A code was sent to ${email}.`);
              setStep('code');
            } catch (err) {
              setError(describe(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          <label class="field">
            <span>Email address</span>
            <input type="email" name="email" autoComplete="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} aria-invalid={!!error} aria-describedby={error ? 'signin-error' : undefined} />
          </label>
          {error && (
            <p class="field-error" id="signin-error" role="alert">
              <span aria-hidden="true">⚠ </span>
              {error}
            </p>
          )}
          <button type="submit" class="btn primary" disabled={busy}>
            {busy ? 'Sending…' : 'Email me a code'}
          </button>
        </form>
      ) : (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              await post('/v1/auth/verify', { email: email.trim(), code: code.trim() }, { quiet401: true });
              await finish();
            } catch (err) {
              setError(describe(err));
            } finally {
              setBusy(false);
            }
          }}
        >
          {info && <p class="notice" role="status">{info}. It may take a minute; check spam too.</p>}
          <label class="field">
            <span>6-digit code</span>
            <input ref={codeRef} name="code" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6}" maxLength={6} required value={code} onInput={(e) => setCode((e.target as HTMLInputElement).value)} aria-invalid={!!error} aria-describedby={error ? 'code-error' : undefined} />
          </label>
          {error && (
            <p class="field-error" id="code-error" role="alert">
              <span aria-hidden="true">⚠ </span>
              {error}
            </p>
          )}
          <div class="actions start">
            <button type="submit" class="btn primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Sign in'}
            </button>
            <button type="button" class="btn ghost" onClick={() => { setStep('email'); setCode(''); setError(null); }}>
              Use another address
            </button>
          </div>
        </form>
      )}
      <p class="small muted">
        By signing in you agree to our <a href="/privacy">privacy policy</a>.
      </p>
    </div>
  );
}
