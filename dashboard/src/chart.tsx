// Time-series charts (uPlot, loaded on first use) with a table alternative beside every chart.
import { useEffect, useRef, useState } from 'preact/hooks';
import type uPlotT from 'uplot';
import { dimValue } from './lib/format';
import { ErrorBox, Loading } from './ui';

export const PALETTE = ['#3559e0', '#e0731f', '#1f9e6e', '#c2357a', '#7b55d6', '#a58b00', '#1a9bb5', '#d64545', '#5c7a29', '#8c6d5a', '#4d6b8a', '#b06fc4', '#2e8b57', '#cc7a00', '#6a6acd', '#b03060', '#3b8686', '#8b8000', '#556b2f', '#996633'];
export const OTHER_COLOR = '#8a8f98';

let uplotPromise: Promise<typeof uPlotT> | null = null;
/** Starts loading the chart library (pages call it while their data loads). */
export function loadUplot(): Promise<typeof uPlotT> {
  if (!uplotPromise) {
    uplotPromise = Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([m]) => m.default);
  }
  return uplotPromise;
}

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color?: string;
}

/** x values (seconds) for bucket labels: hours are instants; local days are placed at UTC midnight. */
export function bucketTimes(buckets: string[]): { xs: number[]; daily: boolean } {
  const daily = buckets.length > 0 && /^\d{4}-\d{2}-\d{2}$/.test(buckets[0]);
  const xs = buckets.map((b) => (daily ? Date.parse(b + 'T00:00:00Z') : Date.parse(b)) / 1000);
  return { xs, daily };
}

/** Cumulative sums of series for stacking (nulls count as 0 below a value). */
export function stack(values: (number | null)[][]): (number | null)[][] {
  const out: (number | null)[][] = [];
  const acc: number[] = values[0]?.map(() => 0) ?? [];
  for (const s of values) {
    out.push(
      s.map((v, i) => {
        acc[i] += v ?? 0;
        return acc[i];
      }),
    );
  }
  return out;
}

export function TimeChart(props: {
  buckets: string[];
  series: ChartSeries[];
  stacked?: boolean;
  format: (n: number) => string;
  axisFormat?: (n: number) => string;
  tz: string;
  title: string;
  height?: number;
  /** Horizontal reference line (a budget). */
  line?: { value: number; label: string };
}) {
  const box = useRef<HTMLDivElement>(null);
  const [err, setErr] = useState<unknown>(null);
  const [ready, setReady] = useState(false);
  const { buckets, series, stacked, format, tz } = props;
  // Parents build new arrays on each render: redraw only when the figures change.
  const dataKey = JSON.stringify([buckets, series.map((x) => [x.label, x.values, x.color])]);
  // Axis and grid colours come from the theme: redraw when the system theme changes.
  const [scheme, setScheme] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);
  useEffect(() => {
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const on = () => setScheme(mq.matches);
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, []);
  useEffect(() => {
    let plot: uPlotT | null = null;
    let ro: ResizeObserver | null = null;
    let live = true;
    loadUplot().then(
      (uPlot) => {
        if (!live || !box.current) return;
        const { xs, daily } = bucketTimes(buckets);
        const colors = series.map((s, i) => s.color ?? PALETTE[i % PALETTE.length]);
        const raw = series.map((s) => s.values);
        const ys = stacked ? stack(raw) : raw;
        // Stacked: draw the tallest (cumulative) first so each lower band paints over it.
        const order = stacked ? series.map((_, i) => series.length - 1 - i) : series.map((_, i) => i);
        const css = getComputedStyle(document.documentElement);
        const axisColor = css.getPropertyValue('--muted').trim() || '#666';
        const gridColor = css.getPropertyValue('--grid').trim() || '#ddd';
        const data: uPlotT.AlignedData = [xs, ...order.map((i) => ys[i] as (number | null)[])] as uPlotT.AlignedData;
        if (props.line) data.push(xs.map(() => props.line!.value) as never);
        const opts: uPlotT.Options = {
          width: Math.max(280, box.current.clientWidth),
          height: props.height ?? 280,
          tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), daily ? 'UTC' : tz),
          legend: { live: true },
          cursor: { points: { size: 6 } },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
          axes: [
            daily
              ? {
                  stroke: axisColor,
                  grid: { stroke: gridColor, width: 1 },
                  ticks: { stroke: gridColor },
                  // Whole days only: a day is one point.
                  incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400],
                  values: (_u, vals) => vals.map((v) => new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric' }).format(new Date(v * 1000))),
                }
              : { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } },
            {
              stroke: axisColor,
              grid: { stroke: gridColor, width: 1 },
              ticks: { stroke: gridColor },
              size: 64,
              values: (_u, vals) => vals.map((v) => (props.axisFormat ?? format)(v)),
            },
          ],
          series: [
            { label: daily ? 'Day' : 'Hour', value: (_u, v) => (v == null ? '—' : new Intl.DateTimeFormat('en-US', { timeZone: daily ? 'UTC' : tz, month: 'short', day: 'numeric', ...(daily ? {} : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) }).format(new Date(v * 1000))) },
            ...order.map((i) => ({
              label: series[i].label,
              stroke: colors[i],
              width: stacked ? 1 : 2,
              fill: stacked ? colors[i] + 'cc' : undefined,
              points: { show: xs.length < 40 },
              value: (_u: uPlotT, _v: number | null, _si: number, idx: number | null) => (idx == null || raw[i][idx] == null ? '—' : format(raw[i][idx] as number)),
            })),
            ...(props.line ? [{ label: props.line.label, stroke: '#d64545', width: 2, dash: [6, 4], points: { show: false }, value: () => format(props.line!.value) }] : []),
          ],
        };
        plot = new uPlot(opts, data, box.current);
        setReady(true);
        ro = new ResizeObserver(() => {
          if (plot && box.current) plot.setSize({ width: Math.max(280, box.current.clientWidth), height: props.height ?? 280 });
        });
        ro.observe(box.current);
      },
      (e) => live && setErr(e),
    );
    return () => {
      live = false;
      ro?.disconnect();
      plot?.destroy();
    };
  }, [dataKey, stacked, tz, props.line?.value, scheme]);
  if (err) return <ErrorBox error={err} title="The chart could not be drawn" />;
  return (
    <figure class="chart">
      <div ref={box} class="chart-box" role="img" aria-label={`${props.title}. The same figures are in the table below.`} />
      {!ready && <Loading label="Drawing chart…" />}
    </figure>
  );
}

/** The table alternative of a chart: one row per bucket, one column per series. */
export function ChartTable(props: { buckets: string[]; series: ChartSeries[]; format: (n: number) => string; tz: string; caption: string; total?: boolean }) {
  const { xs, daily } = bucketTimes(props.buckets);
  const f = new Intl.DateTimeFormat('en-US', { timeZone: daily ? 'UTC' : props.tz, year: 'numeric', month: 'short', day: 'numeric', ...(daily ? {} : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }) });
  return (
    <details class="chart-table">
      <summary>Show the figures as a table</summary>
      <div class="table-wrap">
        <table>
          <caption>{props.caption}</caption>
          <thead>
            <tr>
              <th scope="col">{daily ? 'Day' : 'Hour'}</th>
              {props.series.map((s) => (
                <th key={s.label} scope="col" class="num">
                  {dimValue(s.label)}
                </th>
              ))}
              {props.total && props.series.length > 1 && <th scope="col" class="num">Total</th>}
            </tr>
          </thead>
          <tbody>
            {xs.map((x, i) => (
              <tr key={props.buckets[i]}>
                <th scope="row">{f.format(new Date(x * 1000))}</th>
                {props.series.map((s) => (
                  <td key={s.label} class="num">
                    {s.values[i] == null ? '—' : props.format(s.values[i] as number)}
                  </td>
                ))}
                {props.total && props.series.length > 1 && <td class="num">{props.format(props.series.reduce((a, s) => a + (s.values[i] ?? 0), 0))}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}
