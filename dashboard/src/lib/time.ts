// Dates in a timezone (IANA name) without a date library: Intl gives the offsets.

/** The offset of `tz` from UTC at the instant `ms`, in milliseconds (positive east of UTC). */
export function tzOffsetMs(ms: number, tz: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(ms));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour') % 24, get('minute'), get('second'));
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The UTC instant of a wall-clock time in `tz` (the earlier one when DST makes it ambiguous). */
export function zonedToUtc(y: number, m: number, d: number, h: number, min: number, tz: string): number {
  const guess = Date.UTC(y, m - 1, d, h, min);
  let t = guess - tzOffsetMs(guess, tz);
  // Once more with the offset at the candidate, for instants near a DST change.
  const o2 = tzOffsetMs(t, tz);
  t = guess - o2;
  return t;
}

/** The calendar date (YYYY-MM-DD) of an instant in `tz`. */
export function localDate(ms: number, tz: string): string {
  const p = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
  return p; // en-CA formats as YYYY-MM-DD
}

/** Parses YYYY-MM-DD; null when malformed. */
export function parseDate(s: string | null | undefined): { y: number; m: number; d: number } | null {
  if (!s) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return null;
  const check = new Date(Date.UTC(y, mo - 1, d));
  if (check.getUTCMonth() !== mo - 1) return null;
  return { y, m: mo, d };
}

/** The next calendar day of YYYY-MM-DD. */
export function nextDay(s: string): string {
  const p = parseDate(s);
  if (!p) return s;
  const t = new Date(Date.UTC(p.y, p.m - 1, p.d + 1));
  return t.toISOString().slice(0, 10);
}

/** The start of a local day in `tz` as an RFC 3339 UTC instant. */
export function startOfLocalDay(s: string, tz: string): string | null {
  const p = parseDate(s);
  if (!p) return null;
  return new Date(zonedToUtc(p.y, p.m, p.d, 0, 0, tz)).toISOString();
}

/** A short label for a timezone's current offset: "UTC", "UTC+1", "UTC-4:30". */
export function offsetLabel(tz: string, at = Date.now()): string {
  const o = tzOffsetMs(at, tz) / 60000;
  if (o === 0) return 'UTC';
  const sign = o > 0 ? '+' : '-';
  const a = Math.abs(o);
  const h = Math.floor(a / 60);
  const m = a % 60;
  return `UTC${sign}${h}${m ? `:${String(m).padStart(2, '0')}` : ''}`;
}

/** Every IANA timezone the browser knows (for the settings picker), UTC first. */
export function timezones(): string[] {
  const anyIntl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const list = anyIntl.supportedValuesOf ? anyIntl.supportedValuesOf('timeZone') : [];
  return ['UTC', ...list.filter((z) => z !== 'UTC')];
}
