// Shared building blocks: async data, loading/error/empty states, dialogs, tables, meters.
import { signal } from '@preact/signals';
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { describe } from './lib/api';

// ---------- async data ----------

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  set: (d: T) => void;
}

/** Runs `fn` when `deps` change; a newer run wins over an older one still in flight. */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    fn(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, loading: false });
      },
      (error) => {
        if (!ctl.signal.aborted) setState({ error, loading: false });
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((d: T) => setState({ data: d, loading: false }), []);
  return { data: state.data, error: state.error, loading: state.loading, reload, set };
}

// ---------- states ----------

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="state loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export function ErrorBox({ error, retry, title = 'Something went wrong' }: { error: unknown; retry?: () => void; title?: string }) {
  return (
    <div class="state error" role="alert">
      <strong>
        <span aria-hidden="true">⚠ </span>
        {title}
      </strong>
      <p>{describe(error)}</p>
      {retry && (
        <button type="button" class="btn" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state empty">
      <strong>{title}</strong>
      {children && <div>{children}</div>}
    </div>
  );
}

/** Shows loading, error or the content for an Async. */
export function AsyncView<T>({ a, children, label }: { a: Async<T>; children: (d: T) => ComponentChildren; label?: string }) {
  if (a.error !== undefined && a.error !== null) return <ErrorBox error={a.error} retry={a.reload} />;
  if (a.data === undefined) return <Loading label={label} />;
  return <>{children(a.data)}</>;
}

// ---------- notices ----------

export const toasts = signal<{ id: number; text: string; kind: 'ok' | 'error' }[]>([]);
let toastId = 0;
export function toast(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const id = ++toastId;
  toasts.value = [...toasts.value, { id, text, kind }];
  setTimeout(() => {
    toasts.value = toasts.value.filter((t) => t.id !== id);
  }, 6000);
}

export function Toasts() {
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.value.map((t) => (
        <p key={t.id} class={`toast ${t.kind}`}>
          <span aria-hidden="true">{t.kind === 'ok' ? '✓ ' : '⚠ '}</span>
          {t.text}
        </p>
      ))}
    </div>
  );
}

// ---------- dialogs ----------

export function Modal({ title, onClose, children, wide }: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const opener = document.activeElement as HTMLElement | null;
    return () => {
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={wide ? 'modal wide' : 'modal'}
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div class="modal-head">
        <h2 id={id}>{title}</h2>
        <button type="button" class="btn ghost icon" aria-label="Close" onClick={onClose}>
          ✕
        </button>
      </div>
      {/* Focusable so a long body scrolls from the keyboard too. */}
      <div class="modal-body" tabIndex={0}>
        {children}
      </div>
    </dialog>
  );
}

/**
 * A button that asks before doing something. `confirmText`, when given, must be typed back.
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  message: ComponentChildren;
  confirmLabel?: string;
  danger?: boolean;
  confirmText?: string;
  onConfirm: () => Promise<unknown>;
  class?: string;
  ariaLabel?: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [typed, setTyped] = useState('');
  const close = () => {
    setOpen(false);
    setError(null);
    setTyped('');
  };
  const ok = props.confirmText === undefined || typed === props.confirmText;
  return (
    <>
      <button type="button" class={props.class ?? (props.danger ? 'btn danger' : 'btn')} aria-label={props.ariaLabel} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      {open && (
        <Modal title={props.title} onClose={close}>
          <form
            onSubmit={async (e) => {
              e.preventDefault();
              if (!ok) return;
              setBusy(true);
              setError(null);
              try {
                await props.onConfirm();
                close();
              } catch (err) {
                setError(err);
              } finally {
                setBusy(false);
              }
            }}
          >
            <div class="confirm-message">{props.message}</div>
            {props.confirmText !== undefined && (
              <label class="field">
                <span>
                  Type <code>{props.confirmText}</code> to confirm
                </span>
                <input value={typed} onInput={(e) => setTyped((e.target as HTMLInputElement).value)} autoComplete="off" spellcheck={false} />
              </label>
            )}
            {error !== null && <p class="field-error" role="alert">{describe(error)}</p>}
            <div class="actions">
              <button type="button" class="btn" onClick={close}>
                Cancel
              </button>
              <button type="submit" class={props.danger ? 'btn danger' : 'btn primary'} disabled={busy || !ok}>
                {busy ? 'Working…' : props.confirmLabel ?? props.label}
              </button>
            </div>
          </form>
        </Modal>
      )}
    </>
  );
}

// ---------- copy ----------

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A secret or snippet with a Copy button. */
export function CopyField({ value, label, multiline }: { value: string; label: string; multiline?: boolean }) {
  const [copied, setCopied] = useState<null | boolean>(null);
  const id = useId();
  return (
    <div class="copy-field">
      <label for={id}>{label}</label>
      <div class="copy-row">
        {multiline ? (
          <textarea id={id} readOnly value={value} rows={Math.min(14, value.split('\n').length + 1)} spellcheck={false} onFocus={(e) => (e.target as HTMLTextAreaElement).select()} />
        ) : (
          <input id={id} readOnly value={value} spellcheck={false} onFocus={(e) => (e.target as HTMLInputElement).select()} />
        )}
        <button
          type="button"
          class="btn"
          onClick={async () => {
            setCopied(await copyText(value));
            setTimeout(() => setCopied(null), 2500);
          }}
        >
          {copied === true ? 'Copied ✓' : copied === false ? 'Select and copy' : 'Copy'}
        </button>
      </div>
    </div>
  );
}

// ---------- tables ----------

export interface Col<R> {
  key: string;
  label: string;
  render: (r: R) => ComponentChildren;
  /** Sort key; numeric columns are right-aligned. */
  sort?: (r: R) => number | string | null;
  numeric?: boolean;
}

/** A sortable table. Sorting is local unless `sortState` is given (URL-held). */
export function Table<R>(props: {
  columns: Col<R>[];
  rows: R[];
  caption: string;
  rowKey: (r: R) => string;
  sortState?: { key: string; desc: boolean; set: (key: string, desc: boolean) => void };
  defaultSort?: { key: string; desc: boolean };
  onRowClick?: (r: R) => void;
  rowLabel?: (r: R) => string;
  captionHidden?: boolean;
}) {
  const [local, setLocal] = useState(props.defaultSort ?? null);
  const st = props.sortState ?? (local ? { ...local, set: (key: string, desc: boolean) => setLocal({ key, desc }) } : { key: '', desc: true, set: (key: string, desc: boolean) => setLocal({ key, desc }) });
  const col = props.columns.find((c) => c.key === st.key && c.sort);
  let rows = props.rows;
  if (col?.sort) {
    const f = col.sort;
    rows = [...rows].sort((a, b) => {
      const x = f(a);
      const y = f(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      const r = x < y ? -1 : 1;
      return st.desc ? -r : r;
    });
  }
  return (
    <div class="table-wrap">
      <table>
        <caption class={props.captionHidden ? 'sr-only' : undefined}>{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => {
              const active = col?.key === c.key;
              const aria = active ? (st.desc ? 'descending' : 'ascending') : undefined;
              return (
                <th key={c.key} scope="col" class={c.numeric ? 'num' : undefined} aria-sort={aria}>
                  {c.sort ? (
                    <button type="button" class="sort" onClick={() => st.set(c.key, active ? !st.desc : !!c.numeric)}>
                      {c.label}
                      <span aria-hidden="true" class="sort-ind">
                        {active ? (st.desc ? ' ▼' : ' ▲') : ' ↕'}
                      </span>
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={props.rowKey(r)} class={props.onRowClick ? 'clickable' : undefined}>
              {props.columns.map((c, i) => (
                <td key={c.key} class={c.numeric ? 'num' : undefined}>
                  {i === 0 && props.onRowClick ? (
                    <button type="button" class="linkish" aria-label={props.rowLabel?.(r)} onClick={() => props.onRowClick!(r)}>
                      {c.render(r)}
                    </button>
                  ) : (
                    c.render(r)
                  )}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---------- meters and fields ----------

export function Meter({ label, used, limit, format = (n: number) => n.toLocaleString('en-US') }: { label: string; used: number; limit: number; format?: (n: number) => string }) {
  const ratio = limit > 0 ? used / limit : 0;
  const level = ratio >= 1 ? 'full' : ratio >= 0.8 ? 'high' : 'normal';
  const pctText = limit > 0 ? `${Math.min(999, Math.round(ratio * 100))}%` : '';
  return (
    <div class={`meter ${level}`}>
      <div class="meter-label">
        <span>{label}</span>
        <span>
          {format(used)} of {format(limit)} {pctText && `(${pctText})`}
          {level === 'full' ? ' — limit reached' : level === 'high' ? ' — nearly at the limit' : ''}
        </span>
      </div>
      <progress max={limit || 1} value={Math.min(used, limit || 1)} aria-label={`${label}: ${format(used)} of ${format(limit)}`} />
    </div>
  );
}

export function Field(props: { label: string; error?: string | null; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <label class={props.error ? 'field invalid' : 'field'}>
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small class="hint">{props.hint}</small>}
      {props.error && (
        <small class="field-error" role="alert">
          <span aria-hidden="true">⚠ </span>
          {props.error}
        </small>
      )}
    </label>
  );
}

export function PageHead({ title, children, sub }: { title: string; children?: ComponentChildren; sub?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · LLMtrack`;
  }, [title]);
  return (
    <div class="page-head">
      <div>
        <h1>{title}</h1>
        {sub && <p class="sub">{sub}</p>}
      </div>
      {children && <div class="page-actions">{children}</div>}
    </div>
  );
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge ${kind}`}>{children}</span>;
}
