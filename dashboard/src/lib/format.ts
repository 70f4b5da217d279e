// Number, currency, time and duration formatting. Pure functions, unit-tested.

const LOCALE = 'en-US';

const usd2 = new Intl.NumberFormat(LOCALE, {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

/**
 * A cost in US dollars with sensible precision: two decimals from a cent up; below a cent, two
 * significant digits (up to six decimals); below $0.000001, "<$0.000001". A non-zero cost is
 * never shown as "$0.00".
 */
export function usd(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (value === 0) return '$0.00';
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  if (abs >= 0.01) {
    // Avoid rounding a value just under a cent boundary into "$0.00" (not possible here) and keep
    // the sign in front of the symbol.
    return sign + usd2.format(abs);
  }
  if (abs < 0.000001) return `${sign ? '>-' : '<'}$0.000001`;
  // Two significant digits, at most six decimals.
  const digits = Math.min(6, Math.max(3, 1 - Math.floor(Math.log10(abs))));
  let s = abs.toFixed(digits);
  // Trim trailing zeros but keep at least 2 decimals.
  s = s.replace(/(\.\d\d\d*?)0+$/, '$1');
  return `${sign}$${s}`;
}

/** A compact cost for chart axes: $1.2k, $3.4M, and usd() below $1,000. */
export function usdCompact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${value < 0 ? '-' : ''}$${trim(abs / 1e6)}M`;
  if (abs >= 1e3) return `${value < 0 ? '-' : ''}$${trim(abs / 1e3)}k`;
  return usd(value);
}

function trim(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1).replace(/\.0$/, '') : n.toFixed(2).replace(/\.?0+$/, '');
}

const int = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });

/** A count with thousands separators. */
export function count(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return int.format(value);
}

/** A count in compact form for axes and tight places: 1.2k, 3.4M, 5.6B. */
export function compact(value: number): string {
  const abs = Math.abs(value);
  const sign = value < 0 ? '-' : '';
  if (abs >= 1e9) return `${sign}${trim(abs / 1e9)}B`;
  if (abs >= 1e6) return `${sign}${trim(abs / 1e6)}M`;
  if (abs >= 1e3) return `${sign}${trim(abs / 1e3)}k`;
  return `${sign}${Number.isInteger(abs) ? abs : abs.toFixed(2).replace(/\.?0+$/, '')}`;
}

/** A fraction (0.125) as a percentage ("12.5%"); small non-zero values keep a digit. */
export function pct(fraction: number | null | undefined, digits = 1): string {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return '—';
  const p = fraction * 100;
  if (p !== 0 && Math.abs(p) < 0.1) return p > 0 ? '<0.1%' : '>-0.1%';
  return `${p.toFixed(digits).replace(/\.0+$/, '')}%`;
}

/** Milliseconds as "850 ms" or "1.25 s" or "2.5 min". */
export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (value < 1000) return `${value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(2).replace(/\.?0+$/, '')} s`;
  return `${(value / 60_000).toFixed(1).replace(/\.0$/, '')} min`;
}

/**
 * A change against the previous period, as a fraction (0.25 = +25%). null (no previous data)
 * is "new"; the direction is given in words as well as by sign, so colour is never the only signal.
 */
export function change(fraction: number | null | undefined): { text: string; dir: 'up' | 'down' | 'flat' | 'none' } {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return { text: 'no previous data', dir: 'none' };
  if (!Number.isFinite(fraction)) return { text: 'new', dir: 'up' };
  if (Math.abs(fraction) < 0.0005) return { text: 'no change', dir: 'flat' };
  const p = fraction * 100;
  const abs = Math.abs(p);
  const s = abs >= 100 ? abs.toFixed(0) : abs.toFixed(1).replace(/\.0$/, '');
  return fraction > 0 ? { text: `▲ +${s}%`, dir: 'up' } : { text: `▼ −${s}%`, dir: 'down' };
}

/** The value of one metric, formatted as that metric should be. */
export function metricValue(metric: string, value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  if (metric === 'cost_usd') return usd(value);
  if (metric === 'error_rate') return pct(value);
  if (metric.startsWith('latency_')) return ms(value);
  return count(value);
}

export const METRICS: { id: string; label: string }[] = [
  { id: 'cost_usd', label: 'Cost' },
  { id: 'requests', label: 'Requests' },
  { id: 'errors', label: 'Errors' },
  { id: 'error_rate', label: 'Error rate' },
  { id: 'total_tokens', label: 'Total tokens' },
  { id: 'input_tokens', label: 'Input tokens' },
  { id: 'output_tokens', label: 'Output tokens' },
  { id: 'cached_input_tokens', label: 'Cached input tokens' },
  { id: 'cache_write_tokens', label: 'Cache write tokens' },
  { id: 'reasoning_tokens', label: 'Reasoning tokens' },
  { id: 'unpriced', label: 'Unpriced events' },
  { id: 'latency_p50', label: 'Latency p50' },
  { id: 'latency_p90', label: 'Latency p90' },
  { id: 'latency_p95', label: 'Latency p95' },
  { id: 'latency_p99', label: 'Latency p99' },
];

export function metricLabel(id: string): string {
  return METRICS.find((m) => m.id === id)?.label ?? id;
}

export const DIMENSIONS: { id: string; label: string }[] = [
  { id: 'model', label: 'Model' },
  // Second, so a click on a model's row shows the names it was sent as.
  { id: 'model_sent', label: 'Model as sent' },
  { id: 'provider', label: 'Provider' },
  { id: 'feature', label: 'Feature' },
  { id: 'source', label: 'Source' },
  { id: 'user', label: 'End-user' },
  { id: 'status', label: 'Status' },
];

/** A dimension's label; a tag dimension (`tag:team`) is labelled by its key (`team`). */
export function dimensionLabel(id: string): string {
  if (id.startsWith('tag:') && id.length > 4) return id.slice(4);
  return DIMENSIONS.find((d) => d.id === id)?.label ?? id;
}

/** A dimension's label inside a sentence: "by model", but a tag key as it is spelled ("by costCenter"). */
export function dimensionNoun(id: string): string {
  return id.startsWith('tag:') && id.length > 4 ? id.slice(4) : dimensionLabel(id).toLowerCase();
}

/** A dimension value for display: the empty value (events sent without one) is "(none)". */
export function dimValue(v: string | null | undefined): string {
  if (v === null || v === undefined || v === '') return '(none)';
  return v;
}

const dtCache = new Map<string, Intl.DateTimeFormat>();
function dtf(tz: string, opts: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = tz + JSON.stringify(opts);
  let f = dtCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALE, { ...opts, timeZone: tz });
    dtCache.set(key, f);
  }
  return f;
}

/** An instant as a date and time in a timezone: "Nov 27, 2026, 10:05". */
export function dateTime(iso: string | number | null | undefined, tz: string): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return dtf(tz, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(d);
}

/** An instant as a date with seconds, for the request log. */
export function dateTimeSeconds(iso: string | number, tz: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return dtf(tz, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(d);
}

/** An instant as a date only in a timezone: "Nov 27, 2026". */
export function date(iso: string | number | null | undefined, tz: string): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return dtf(tz, { year: 'numeric', month: 'short', day: 'numeric' }).format(d);
}

/** "YYYY-MM" as "November 2026". */
export function monthName(ym: string): string {
  const [y, m] = ym.split('-').map(Number);
  if (!y || !m) return ym;
  return new Intl.DateTimeFormat(LOCALE, { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, 1)));
}

/** How long ago, roughly: "just now", "5 min ago", "3 h ago", "2 d ago". */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, (now - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
