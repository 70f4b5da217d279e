// The reads the overview makes, in one place: the page uses them, and the start-up code prefetches
// them while the session and the page's code load.
import { withQuery, wsPath } from './api';
import { type ViewState, apiParams, rangeDays } from './urlstate';

export function overviewPaths(ws: string, view: ViewState, tz: string): { summary: string; series: string; usage: string; forecast: string; alerts: string; budgets: string } {
  const stackBy = view.extra.stack ?? 'model';
  const gran = rangeDays(view) <= 2 ? 'hour' : 'day';
  return {
    summary: withQuery('/v1/stats/summary', apiParams(ws, view, tz)),
    series: withQuery('/v1/stats/timeseries', apiParams(ws, view, tz, { metric: 'cost_usd', by: stackBy, granularity: gran, top: 8 })),
    usage: wsPath(ws, 'usage'),
    forecast: withQuery('/v1/stats/forecast', { workspace: ws }),
    alerts: wsPath(ws, 'alerts'),
    budgets: withQuery('/v1/stats/budgets', { workspace: ws }),
  };
}
